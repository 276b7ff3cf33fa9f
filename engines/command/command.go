// Package command is the escape-hatch engine: it runs any program and takes
// its standard output as the stream. A program that exits non-zero or is
// killed fails the dump, with its exit status and last lines of stderr.
package command

import (
	"cmp"
	"context"
	"errors"
	"io"
	"path/filepath"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/engines/internal/proc"
)

// Command runs Argv and streams its stdout.
type Command struct {
	Argv []string
	// Env is the child's environment; nil inherits bk's.
	Env []string
	// Stderr, if set, also receives the child's stderr as it is written.
	Stderr io.Writer
	// TailLines is how many trailing stderr lines an error quotes (default 5).
	TailLines int
}

// ExitError reports a command that failed: its exit status or signal and
// the last lines of its stderr.
type ExitError = proc.ExitError

// Name returns "command".
func (c *Command) Name() string { return "command" }

// Source returns the program's base name, for snapshot metadata. Arguments
// are never recorded: they may hold secrets.
func (c *Command) Source() string { return c.program() }

func (c *Command) program() string {
	if len(c.Argv) == 0 {
		return ""
	}
	return filepath.Base(c.Argv[0])
}

// Dump runs the command and copies its stdout to w. It returns only after
// the command has exited; the error is an *ExitError when the command failed.
// If writing to w fails, the command is killed and the write error returned.
func (c *Command) Dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	if err := c.run(ctx, w); err != nil {
		return nil, err
	}
	return &engines.Manifest{Engine: c.Name(), Tool: c.program()}, nil
}

func (c *Command) run(ctx context.Context, w io.Writer) error {
	if len(c.Argv) == 0 {
		return errors.New("no command given")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := proc.Command(ctx, c.Argv[0], c.Argv[1:], c.Env, cmp.Or(c.TailLines, 5))
	if c.Stderr != nil {
		ch.Cmd.Stderr = io.MultiWriter(ch.Cmd.Stderr, c.Stderr)
	}
	stdout, err := ch.Cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := ch.Start(); err != nil {
		return err
	}
	_, copyErr := io.Copy(w, stdout)
	if copyErr != nil {
		cancel() // the consumer is gone; stop the producer
	}
	waitErr := ch.Wait()
	if copyErr != nil {
		return copyErr
	}
	return waitErr
}
