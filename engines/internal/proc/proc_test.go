package proc

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var failRE = regexp.MustCompile(`^tool: error: `)

// sh runs a shell script as a Child that fails on failRE.
func sh(t *testing.T, script string) error {
	t.Helper()
	c := Command(context.Background(), "/bin/sh", []string{"-c", script}, nil, 3)
	c.FailOn(failRE)
	_, err := c.Run(nil)
	return err
}

func TestFailOn(t *testing.T) {
	if err := sh(t, "echo 'tool: warning: x' >&2; echo ' tool: error' >&2"); err != nil {
		t.Fatalf("no failure line: %v", err)
	}
	err := sh(t, "echo 'tool: error: first' >&2; echo 'tool: error: second' >&2; for i in 1 2 3 4; do echo more $i >&2; done")
	var se *StderrError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a StderrError", err)
	}
	// The first failure line is quoted even after it left the tail.
	if se.Line != "tool: error: first" || len(se.Stderr) != 3 || !strings.Contains(err.Error(), "more 4") {
		t.Fatalf("StderrError %+v: %v", se, err)
	}
	// An unfinished last line counts; a leading blank is trimmed.
	if err := sh(t, "printf '  tool: error: no newline' >&2"); !errors.As(err, &se) || se.Line != "tool: error: no newline" {
		t.Fatalf("unfinished line: %v", err)
	}
	// A failed exit stays an ExitError that quotes the tail.
	var xe *ExitError
	if err := sh(t, "echo 'tool: error: bad' >&2; exit 3"); !errors.As(err, &xe) || xe.Status != 3 || !strings.Contains(err.Error(), "tool: error: bad") {
		t.Fatalf("exit 3: %v", err)
	}
	// A long failure line is cut like the tail's lines.
	long := strings.Repeat("x", 1000)
	if err := sh(t, "echo 'tool: error: "+long+"' >&2"); !errors.As(err, &se) || len(se.Line) > 310 {
		t.Fatalf("long line: %v", err)
	}
}
