package postgres

import (
	"context"
	"regexp"
	"strings"

	"github.com/bk-backup/bk/engines/internal/proc"
)

// tailLines is how many trailing stderr lines an error quotes.
const tailLines = 8

// ExitError reports a client program that failed.
type ExitError = proc.ExitError

// StderrError reports a client program that exited 0 but wrote an error
// line to stderr.
type StderrError = proc.StderrError

// dumpFailure matches the stderr lines with which pg_dump and pg_dumpall
// report an error ("pg_dump: error: ...", "pg_dump: fatal: ..." before
// PostgreSQL 13). A dump that printed one failed, whatever the exit status.
var dumpFailure = regexp.MustCompile(`^pg_dump(all)?: (error|fatal): `)

// child is one run of a client program.
type child = proc.Child

// command prepares program with args and env. The child is killed when ctx
// ends. Its stderr is kept in a tail; its stdin and stdout are the caller's
// to set.
func (e *Engine) command(ctx context.Context, program string, args, env []string) *child {
	return proc.Command(ctx, e.bin(program), args, env, tailLines)
}

// psql runs a psql script (given on stdin, so psql variables work) against
// database db, with vars set by -v, and returns the unaligned, tuples-only
// output split into rows of fields.
func (e *Engine) psql(ctx context.Context, db, script string, vars map[string]string) ([][]string, error) {
	env, cleanup, err := e.childEnv()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	args := append([]string{"-X", "-q", "-A", "-t", "-F", "\x1f", "-R", "\x1e", "-v", "ON_ERROR_STOP=1"}, e.connArgs()...)
	for k, v := range vars {
		args = append(args, "-v", k+"="+v)
	}
	args = append(args, "-d", db)
	out, err := e.command(ctx, "psql", args, env).Run(strings.NewReader(script))
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, rec := range strings.Split(string(out), "\x1e") {
		rec = strings.TrimRight(rec, "\n")
		if rec == "" {
			continue
		}
		rows = append(rows, strings.Split(rec, "\x1f"))
	}
	return rows, nil
}
