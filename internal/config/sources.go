package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// knownSources lists the source forms a job may name, for messages.
const knownSources = "postgres:// (postgresql://), mysql:// (mariadb://), sqlite:///, redis://, file:/// or an absolute folder"

// Source kinds, by URL scheme.
const (
	kindPostgres = "postgres"
	kindMySQL    = "mysql"
	kindSQLite   = "sqlite"
	kindRedis    = "redis"
	kindTree     = "dir"
)

// sourceKind maps URL schemes to source kinds.
var sourceKind = map[string]string{
	"postgres": kindPostgres, "postgresql": kindPostgres,
	"mysql": kindMySQL, "mariadb": kindMySQL,
	"sqlite": kindSQLite,
	"redis":  kindRedis,
	"file":   kindTree,
}

// parsedSource is a checked source: its kind, the folder or file of a tree
// or SQLite source, and host:port of a server.
type parsedSource struct {
	kind string
	path string // kindTree, kindSQLite
	addr string // kindPostgres, kindMySQL, kindRedis: host:port
}

// defaultPorts are the servers' ports when a URL names none.
var defaultPorts = map[string]string{kindPostgres: "5432", kindMySQL: "3306", kindRedis: "6379"}

// redactString is src without a password, for messages; src itself when it
// is not a URL.
func redactString(src string) string {
	u, err := url.Parse(src)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(src, "@") {
			return "(a malformed URL)"
		}
		return src
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// checkSource checks a source's form, the rules `bk snapshot` applies, with
// one more: a folder must be absolute.
func checkSource(src string) error {
	_, err := parseSource(src)
	return err
}

// parseSource checks src and returns what Validate needs to reach it.
func parseSource(src string) (parsedSource, error) {
	if strings.HasPrefix(src, "/") {
		return parsedSource{kind: kindTree, path: filepath.Clean(src)}, nil
	}
	if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") || src == "." || src == ".." {
		return parsedSource{}, fmt.Errorf("folder %q is relative; give an absolute path (bk may run from any folder)", src)
	}
	u, err := url.Parse(src)
	if err != nil || u.Scheme == "" {
		if strings.Contains(src, "@") {
			return parsedSource{}, fmt.Errorf("source is not a URL; want %s", knownSources)
		}
		return parsedSource{}, fmt.Errorf("source %q is not a URL; want %s", src, knownSources)
	}
	kind, ok := sourceKind[strings.ToLower(u.Scheme)]
	if !ok {
		return parsedSource{}, fmt.Errorf("unknown engine %q in source %s; known: %s", u.Scheme, redactString(src), knownSources)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return parsedSource{}, fmt.Errorf("source %s holds a password: put it in a file (mode 0600) and name that file in db_password_file", redactString(src))
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return parsedSource{}, fmt.Errorf("source %s: no query (?...) or fragment (#...) allowed", redactString(src))
	}
	switch kind {
	case kindTree:
		if u.Host != "" && u.Host != "localhost" || !filepath.IsAbs(u.Path) {
			return parsedSource{}, fmt.Errorf("source %q is not a file:///absolute/path URL", src)
		}
		return parsedSource{kind: kind, path: filepath.Clean(u.Path)}, nil
	case kindSQLite:
		if u.Host != "" || u.User != nil {
			return parsedSource{}, fmt.Errorf("source %q: want sqlite:///abs/path (three slashes), not host %q", src, u.Host)
		}
		if !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) == "/" {
			return parsedSource{}, fmt.Errorf("source %q: want sqlite:///abs/path/to.db", src)
		}
		return parsedSource{kind: kind, path: filepath.Clean(u.Path)}, nil
	}
	addr, err := serverAddr(u, defaultPorts[kind])
	if err != nil {
		return parsedSource{}, fmt.Errorf("source %s: %v", redactString(src), err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	switch {
	case kind == kindRedis && db != "":
		return parsedSource{}, fmt.Errorf("source %s: a redis:// URL names no database (an RDB snapshot holds them all)", redactString(src))
	case kind != kindRedis && db == "":
		return parsedSource{}, fmt.Errorf("source %s names no database: want %s://[user@]host[:port]/dbname, or /* for every database", redactString(src), u.Scheme)
	case kind != kindRedis && strings.Contains(db, "/"):
		return parsedSource{}, fmt.Errorf("source %s: bad database name %q", redactString(src), db)
	}
	return parsedSource{kind: kind, addr: addr}, nil
}

// serverAddr returns host:port of a server URL.
func serverAddr(u *url.URL, defPort string) (string, error) {
	host := u.Hostname()
	if host == "" {
		return "", errors.New("no host")
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// checkScratch checks a [jobs.NAME.check] scratch server: a PostgreSQL or
// MariaDB URL without a password (a database name is allowed and ignored).
func checkScratch(s string) error {
	_, err := parseScratch(s)
	return err
}

// parseScratch checks a scratch URL and returns its host:port.
func parseScratch(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("scratch server is not a URL like postgres://user@host or mysql://user@host")
	}
	kind := sourceKind[strings.ToLower(u.Scheme)]
	if kind != kindPostgres && kind != kindMySQL {
		return "", fmt.Errorf("scratch server %s: want postgres:// or mysql:// (mariadb://)", redactString(s))
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return "", fmt.Errorf("scratch server %s holds a password: put it in a file named by db_password_file", redactString(s))
		}
	}
	addr, err := serverAddr(u, defaultPorts[kind])
	if err != nil {
		return "", fmt.Errorf("scratch server %s: %v", redactString(s), err)
	}
	return addr, nil
}

// checkHTTPURL checks a notification URL: http or https, with a host.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", redactString(s))
	}
	return nil
}
