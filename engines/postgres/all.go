package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"

	"github.com/bk-backup/bk/engines"
)

// clusterTrailer is the line pg_dumpall writes last when it completed.
const clusterTrailer = "-- PostgreSQL database cluster dump complete"

// All reports whether the source names every database (postgres://host/*).
func (e *Engine) All() bool { return e.database == "*" }

// Expand turns an all-databases source into one engine per database that
// accepts connections (templates excluded), plus Globals for the roles and
// tablespaces, which no single database's dump holds.
func (e *Engine) Expand(ctx context.Context) ([]engines.Engine, error) {
	if !e.All() {
		return []engines.Engine{e}, nil
	}
	rows, err := e.psql(ctx, "postgres",
		"SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname;", nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the databases of %s: %w", e.Source(), err)
	}
	out := []engines.Engine{&Globals{e: e}}
	for _, row := range rows {
		if len(row) == 0 || row[0] == "" {
			continue
		}
		db := *e
		db.database = row[0]
		out = append(out, &db)
	}
	return out, nil
}

// Globals dumps a cluster's roles and tablespaces with
// `pg_dumpall --globals-only`, as its own stream.
type Globals struct{ e *Engine }

// Name returns "postgres".
func (g *Globals) Name() string { return Name }

// Source returns postgres://[user@]host:port/ with "#globals".
func (g *Globals) Source() string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(g.e.host, strconv.Itoa(g.e.port)), Path: "/", Fragment: "globals"}
	if g.e.user != "" {
		u.User = url.User(g.e.user)
	}
	return u.String()
}

// Dump streams the globals; the error is nil only when pg_dumpall exited 0,
// printed no error line to stderr, and wrote its completion line.
func (g *Globals) Dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	e := g.e
	m := &engines.Manifest{Engine: Name, Tool: "pg_dumpall", Database: "(globals)"}
	if v, err := e.toolVersion(ctx); err == nil {
		m.ToolVersion = v
	}
	if _, sv, err := e.serverVersion(ctx); err == nil {
		m.ServerVersion = sv
	}
	env, cleanup, err := e.childEnv()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := e.command(ctx, "pg_dumpall", append([]string{"--globals-only"}, e.connArgs()...), env)
	c.FailOn(dumpFailure)
	stdout, err := c.Cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	tc := trailerCheck{want: clusterTrailer}
	_, copyErr := io.Copy(io.MultiWriter(w, &tc), stdout)
	if copyErr != nil {
		cancel()
	}
	waitErr := c.Wait()
	switch {
	case copyErr != nil:
		return nil, fmt.Errorf("postgres: dump globals: write: %w", copyErr)
	case waitErr != nil:
		return nil, fmt.Errorf("postgres: dump globals of %s: %w", g.Source(), waitErr)
	}
	if err := tc.check(); err != nil {
		if errors.Is(err, ErrIncomplete) {
			return nil, errors.New("postgres: pg_dumpall output is incomplete: the completion line is missing")
		}
		return nil, fmt.Errorf("postgres: pg_dumpall: %w", err)
	}
	return m, nil
}
