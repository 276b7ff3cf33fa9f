package main

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/engines/mysql"
	"github.com/bk-backup/bk/engines/postgres"
	"github.com/bk-backup/bk/engines/redis"
	"github.com/bk-backup/bk/engines/sqlite"
)

// openSource returns the engine for a source URL and the snapshot name it
// gets when --name is not given ("postgres:app"). dbPasswordFile is the
// --db-password-file flag.
func openSource(src, dbPasswordFile string) (engines.Engine, string, error) {
	u, err := url.Parse(src)
	if err != nil || u.Scheme == "" {
		return nil, "", usagef("source %q is not a URL like postgres://host/db; for other tools use -- COMMAND", src)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "*" {
		db = "all"
	}
	var e engines.Engine
	var name string
	switch u.Scheme {
	case "postgres", "postgresql":
		e, err = postgres.New(src, postgres.Options{PasswordFile: dbPasswordFile})
		name = "postgres:" + db
	case "mysql", "mariadb":
		e, err = mysql.New(src, mysql.Options{PasswordFile: dbPasswordFile})
		name = "mysql:" + db
	case "sqlite":
		e, err = sqlite.New(src, sqlite.Options{})
		name = "sqlite:" + path.Base(u.Path)
	case "redis":
		e, err = redis.New(src, redis.Options{PasswordFile: dbPasswordFile})
		name = "redis:" + u.Host
	default:
		return nil, "", usagef("source %q: this build has engines for postgres://, mysql:// (mariadb://), sqlite:/// and redis://; for other sources use -- COMMAND", redact(u))
	}
	if err != nil {
		// A malformed source, a password in the URL, or a password file
		// anyone may read: the command line must change.
		return nil, "", usageError{err}
	}
	return e, name, nil
}

// redact drops a password from a URL for messages.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

// restorer returns the engine that loads a dump into the target URL.
func restorer(target, dbPasswordFile string) (engines.Restorer, error) {
	e, _, err := openSource(target, dbPasswordFile)
	if err != nil {
		return nil, err
	}
	r, ok := e.(engines.Restorer)
	if !ok {
		return nil, fmt.Errorf("the %s engine cannot restore into a database; use --target DIR", e.Name())
	}
	return r, nil
}

// expander is an engine whose source names several streams (postgres://host/*).
type expander interface {
	All() bool
	Expand(ctx context.Context) ([]engines.Engine, error)
}

// expandSource turns a source naming every database into one named engine
// per database (plus the cluster's globals); other sources stay as they are.
func expandSource(ctx context.Context, e engines.Engine, name string) ([]engines.Engine, []string, error) {
	x, ok := e.(expander)
	if !ok || !x.All() {
		return []engines.Engine{e}, []string{name}, nil
	}
	list, err := x.Expand(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(list))
	for i, sub := range list {
		src := sub.Source()
		if u, err := url.Parse(src); err == nil && u.Fragment == "globals" {
			names[i] = e.Name() + ":globals"
		} else if err == nil {
			names[i] = e.Name() + ":" + strings.TrimPrefix(u.Path, "/")
		}
	}
	return list, names, nil
}
