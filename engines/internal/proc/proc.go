// Package proc runs the dump and load tools of bk's engines: it keeps the
// last lines of a child's stderr and turns a failed exit into an ExitError
// that quotes them, naming a signal when the child was killed. A child may
// also declare stderr lines that mean failure whatever its exit status;
// one of them turns a clean exit into a StderrError.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExitError reports a program that failed.
type ExitError struct {
	Program string
	Status  int    // exit status, or -1 when killed by a signal
	Signal  string // the signal's name when killed
	Stderr  []string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "%s was killed by signal %s", e.Program, e.Signal)
	} else {
		fmt.Fprintf(&b, "%s exited with status %d", e.Program, e.Status)
	}
	if len(e.Stderr) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

// StderrError reports a program that exited 0 but wrote a line to stderr
// that its engine declared a failure (see Child.FailOn): its output cannot
// be trusted to be complete.
type StderrError struct {
	Program string
	Line    string   // the first failure line
	Stderr  []string // the last lines of stderr
}

func (e *StderrError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s exited with status 0 but reported an error: %q", e.Program, e.Line)
	if len(e.Stderr) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

// Child is one run of a program, with its stderr tail kept. Its Cmd's stdin
// and stdout are the caller's to set before Start.
type Child struct {
	Cmd     *exec.Cmd
	ctx     context.Context
	program string
	stderr  *TailWriter
}

// Command prepares the program at path with args and env (nil inherits
// bk's). The child is killed when ctx ends; tail is how many stderr lines an
// error quotes.
func Command(ctx context.Context, path string, args, env []string, tail int) *Child {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	c := &Child{Cmd: cmd, ctx: ctx, program: filepath.Base(path), stderr: &TailWriter{Max: tail}}
	cmd.Stderr = c.stderr
	return c
}

// FailOn declares stderr lines that mean the program failed even when it
// exits 0: a line (with surrounding space trimmed) that matches any of
// patterns makes Wait return a *StderrError quoting it. Call it before
// Start.
func (c *Child) FailOn(patterns ...*regexp.Regexp) {
	c.stderr.setFailOn(patterns)
}

// Start starts the child, naming the program in the error.
func (c *Child) Start() error {
	if err := c.Cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.program, err)
	}
	return nil
}

// Wait waits for the child and turns a failure into an *ExitError, wrapped
// with ctx's error when the child was killed because ctx ended. A clean
// exit after a stderr line declared by FailOn is a *StderrError.
func (c *Child) Wait() error {
	err := c.Cmd.Wait()
	if err == nil {
		lines := c.stderr.Lines() // flushes an unfinished last line
		if line := c.stderr.failure(); line != "" {
			return &StderrError{Program: c.program, Line: line, Stderr: lines}
		}
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("run %s: %w", c.program, err)
	}
	xe := &ExitError{Program: c.program, Status: ee.ExitCode(), Stderr: c.stderr.Lines()}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		xe.Signal = unix.SignalName(ws.Signal())
	}
	if c.ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", xe, c.ctx.Err())
	}
	return xe
}

// Run runs the child to the end with stdin (may be nil) and returns its
// stdout.
func (c *Child) Run(stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	c.Cmd.Stdin = stdin
	c.Cmd.Stdout = &out
	if err := c.Start(); err != nil {
		return nil, err
	}
	if err := c.Wait(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// TailWriter keeps the last Max non-empty lines written to it, each cut to
// 300 bytes. It is safe for concurrent use.
type TailWriter struct {
	Max     int
	mu      sync.Mutex
	partial []byte
	buf     []string
	failOn  []*regexp.Regexp
	failed  string // the first line that matched failOn
}

func (t *TailWriter) setFailOn(patterns []*regexp.Regexp) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failOn = append(t.failOn, patterns...)
}

// failure returns the first line that matched a FailOn pattern, cut to 300
// bytes, or "".
func (t *TailWriter) failure() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *TailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.push(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 4096 {
		t.push(string(t.partial))
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

func (t *TailWriter) push(line string) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	match := false
	if t.failed == "" {
		for _, re := range t.failOn {
			if re.MatchString(line) {
				match = true
				break
			}
		}
	}
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	if match {
		t.failed = line
	}
	t.buf = append(t.buf, line)
	if len(t.buf) > max(t.Max, 1) {
		t.buf = t.buf[len(t.buf)-max(t.Max, 1):]
	}
}

// Lines returns the kept lines, oldest first, including an unfinished last one.
func (t *TailWriter) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.push(string(t.partial))
		t.partial = nil
	}
	return append([]string(nil), t.buf...)
}
