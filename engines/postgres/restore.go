package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maintenanceDB is the database Restore connects to when it creates the
// target.
const maintenanceDB = "postgres"

// ErrNotEmpty reports a restore target that already holds relations.
var ErrNotEmpty = errors.New("target database is not empty")

// Restore loads the plain dump r into the engine's database with psql in a
// single transaction. It creates the database when missing, refuses one that
// holds tables, views or sequences unless force, and stops at the first SQL
// error. A stream without the completion trailer is rolled back: psql is
// killed before it sees the end of its input, so it never commits.
//
// force does not drop anything: the dump has no DROP statements, so objects
// that already exist make the load fail and roll back.
func (e *Engine) Restore(ctx context.Context, r io.Reader, force bool) error {
	if err := e.createIfMissing(ctx); err != nil {
		return fmt.Errorf("postgres: create %s: %w", e.Source(), err)
	}
	if !force {
		n, err := e.relations(ctx)
		if err != nil {
			return fmt.Errorf("postgres: inspect %s: %w", e.Source(), err)
		}
		if n > 0 {
			return fmt.Errorf("postgres: restore into %s: %w (%d tables, views or sequences); use --force to load anyway", e.Source(), ErrNotEmpty, n)
		}
	}
	if err := e.load(ctx, r); err != nil {
		return fmt.Errorf("postgres: restore into %s stopped: %w", e.Source(), err)
	}
	return nil
}

// createIfMissing creates the database unless it exists.
func (e *Engine) createIfMissing(ctx context.Context) error {
	const script = `SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS bk_missing \gset
\if :bk_missing
CREATE DATABASE :"db";
\endif
`
	_, err := e.psql(ctx, maintenanceDB, script, map[string]string{"db": e.database})
	return err
}

// relations counts the tables, views and sequences outside the system
// schemas.
func (e *Engine) relations(ctx context.Context) (int, error) {
	rows, err := e.psql(ctx, e.database, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','v','m','S','f')
AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%';
`, nil)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, errors.New("unexpected answer to the relation count query")
	}
	return strconv.Atoi(rows[0][0])
}

// load feeds r to psql. psql's stdin is closed (letting --single-transaction
// commit) only after r ended cleanly with the completion trailer; on any
// other outcome psql is killed first, so the transaction rolls back.
func (e *Engine) load(ctx context.Context, r io.Reader) error {
	env, cleanup, err := e.childEnv()
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"}, e.connArgs()...)
	args = append(args, "-d", e.database)
	c := e.command(ctx, "psql", args, env)
	c.Cmd.Stdout = io.Discard // results of set_config, setval, ...
	stdin, err := c.Cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	var tc trailerCheck
	_, copyErr := io.Copy(io.MultiWriter(stdin, &tc), r)
	var feedErr error
	switch {
	case copyErr != nil:
		feedErr = copyErr
	default:
		feedErr = tc.check()
	}
	if feedErr != nil {
		// Kill before closing stdin: EOF would make psql commit.
		_ = c.Cmd.Process.Kill()
	}
	_ = stdin.Close()
	waitErr := c.Wait()
	// psql's own error explains a broken pipe, so it comes first, as does
	// the end of ctx.
	if waitErr != nil && (feedErr == nil || ctx.Err() != nil || c.Cmd.ProcessState.ExitCode() != -1) {
		return waitErr
	}
	if feedErr != nil {
		return fmt.Errorf("read dump: %w; nothing was committed", feedErr)
	}
	return nil
}
