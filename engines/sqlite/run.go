package sqlite

import (
	"context"
	"os"
	"strings"

	"github.com/bk-backup/bk/engines/internal/proc"
)

// tailLines is how many trailing stderr lines an error quotes.
const tailLines = 8

// ExitError reports a client program that failed.
type ExitError = proc.ExitError

// child is one run of a client program.
type child = proc.Child

// command prepares program with args and env. The child is killed when ctx
// ends. Its stderr is kept in a tail; its stdin and stdout are the caller's
// to set.
func (e *Engine) command(ctx context.Context, program string, args, env []string) *child {
	return proc.Command(ctx, e.bin(program), args, env, tailLines)
}

// sqlite3 runs script (SQL and dot-commands, on stdin) against the database
// named by uri and returns its stdout. The shell reads no ~/.sqliterc, stops
// at the first error and exits non-zero on it.
func (e *Engine) sqlite3(ctx context.Context, uri, script string) (string, error) {
	args := []string{"-batch", "-bail", "-init", os.DevNull, "-noheader", "-list", uri}
	out, err := e.command(ctx, "sqlite3", args, e.env).Run(strings.NewReader(script))
	return string(out), err
}
