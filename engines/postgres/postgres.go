package postgres

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/engines/internal/secret"

	"github.com/bk-backup/bk/engines"
)

// Name is the engine's name in manifests.
const Name = "postgres"

// defaultPort is PostgreSQL's port when the URL names none.
const defaultPort = 5432

// Options configure an Engine.
type Options struct {
	// PasswordFile holds the password (one line; a trailing newline is
	// dropped). It must not be group- or world-readable.
	PasswordFile string
	// Env is the base environment of the children; nil means os.Environ().
	Env []string
	// BinDir is the directory holding pg_dump and psql; "" searches PATH.
	BinDir string
}

// Engine dumps and restores one PostgreSQL database.
type Engine struct {
	host     string
	port     int
	user     string // "" leaves the choice to libpq (PGUSER, OS user)
	database string
	password string // from PasswordFile only; "" otherwise
	env      []string
	binDir   string
}

var (
	_ engines.Engine   = (*Engine)(nil)
	_ engines.Restorer = (*Engine)(nil)
)

// New parses postgres://[user@]host[:port]/dbname (or postgresql://) and
// reads the password file, if any. A URL holding a password is an error.
func New(rawURL string, opts Options) (*Engine, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, which may hold a password.
		return nil, errors.New("postgres: malformed URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("postgres: URL scheme %q is not postgres:// or postgresql://", u.Scheme)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, errors.New("postgres: the URL holds a password; put the password in a file: --db-password-file or PGPASSFILE")
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("postgres: the URL must be postgres://[user@]host[:port]/dbname with no query or fragment")
	}
	e := &Engine{host: u.Hostname(), port: defaultPort, env: opts.Env, binDir: opts.BinDir}
	if e.host == "" {
		return nil, errors.New("postgres: the URL names no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("postgres: bad port %q", p)
		}
		e.port = n
	}
	if u.User != nil {
		e.user = u.User.Username()
	}
	e.database = strings.TrimPrefix(u.Path, "/")
	switch {
	case e.database == "":
		return nil, errors.New("postgres: the URL names no database (postgres://host/dbname)")
	case e.database == "*":
		// Every database: Expand turns the source into one engine per
		// database plus the cluster's globals.
	case strings.Contains(e.database, "/"):
		return nil, fmt.Errorf("postgres: bad database name %q", e.database)
	}
	if e.env == nil {
		e.env = os.Environ()
	}
	if v, ok := secret.LookupEnv(e.env, "PGPASSWORD"); ok && v == "" {
		return nil, errors.New("postgres: PGPASSWORD is set but empty; unset it or give a password")
	}
	if opts.PasswordFile != "" {
		pw, err := readPassword(opts.PasswordFile)
		if err != nil {
			return nil, err
		}
		e.password = pw
	}
	return e, nil
}

// Name returns "postgres".
func (e *Engine) Name() string { return Name }

// Source returns the URL without a password, with the port always given.
func (e *Engine) Source() string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(e.host, strconv.Itoa(e.port)), Path: "/" + e.database}
	if e.All() {
		u.Path = "/" // url.URL would escape the star
	}
	if e.user != "" {
		u.User = url.User(e.user)
	}
	if e.All() {
		return u.String() + "*"
	}
	return u.String()
}

// pgpassLine is a pgpass(5) entry for the password, with ':' and '\' escaped.
// The database field is '*' so that the maintenance database used by Restore
// matches too.
func pgpassLine(host string, port int, user, password string) string {
	esc := func(s string) string {
		if s == "" {
			return "*"
		}
		return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
	}
	return esc(host) + ":" + strconv.Itoa(port) + ":*:" + esc(user) + ":" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password) + "\n"
}

// childEnv returns the environment of a child and a cleanup that removes the
// temporary PGPASSFILE, if one was written. Call cleanup after the child has
// exited.
func (e *Engine) childEnv() (env []string, cleanup func(), err error) {
	env = append([]string(nil), e.env...)
	if e.password == "" {
		return env, func() {}, nil
	}
	f, err := os.CreateTemp("", "bk-pgpass-*")
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: temporary password file: %w", err)
	}
	name := f.Name()
	cleanup = func() { _ = os.Remove(name) }
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(pgpassLine(e.host, e.port, e.user, e.password))
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		_ = f.Close()
		cleanup()
		return nil, nil, fmt.Errorf("postgres: temporary password file: %w", err)
	}
	// PGPASSWORD would win over PGPASSFILE in libpq; the file was asked for.
	env = secret.SetEnv(secret.UnsetEnv(env, "PGPASSWORD"), "PGPASSFILE", name)
	return env, cleanup, nil
}

// connArgs are the connection flags shared by pg_dump and psql.
func (e *Engine) connArgs() []string {
	args := []string{"--no-password", "-h", e.host, "-p", strconv.Itoa(e.port)}
	if e.user != "" {
		args = append(args, "-U", e.user)
	}
	return args
}

// bin returns the path of program, inside BinDir when set.
func (e *Engine) bin(program string) string {
	if e.binDir == "" {
		return program
	}
	return filepath.Join(e.binDir, program)
}

// readPassword reads the password file of Options.PasswordFile.
func readPassword(path string) (string, error) {
	pw, err := secret.ReadPasswordFile(path)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	return pw, nil
}
