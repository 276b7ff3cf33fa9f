package postgres

import (
	"bytes"
	"errors"
)

// trailer is the line pg_dump writes last in a plain dump that completed.
const trailer = "-- PostgreSQL database dump complete"

// trailerWindow is how many trailing bytes the check keeps. It must hold the
// trailer plus what may follow it: "--", blank lines and the \unrestrict line
// with its 64-character key.
const trailerWindow = 512

// ErrIncomplete reports a plain dump stream that lacks the completion trailer.
var ErrIncomplete = errors.New("pg_dump output is incomplete: the completion line \"" + trailer + "\" is missing at the end")

// ErrEmpty reports a dump stream of zero bytes.
var ErrEmpty = errors.New("pg_dump output is empty")

// trailerCheck is an io.Writer that counts the bytes written to it and keeps
// the last trailerWindow of them, to tell whether a plain dump is complete.
type trailerCheck struct {
	want string // the completion line; "" means the trailer of pg_dump
	n    int64
	tail []byte
}

func (t *trailerCheck) Write(p []byte) (int, error) {
	t.n += int64(len(p))
	if len(p) >= trailerWindow {
		t.tail = append(t.tail[:0], p[len(p)-trailerWindow:]...)
		return len(p), nil
	}
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - trailerWindow; over > 0 {
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return len(p), nil
}

// check returns nil when the stream so far is a complete plain dump: its
// last lines are the trailer line, then only "--" lines, blank lines
// and \unrestrict lines.
func (t *trailerCheck) check() error {
	if t.n == 0 {
		return ErrEmpty
	}
	want := t.want
	if want == "" {
		want = trailer
	}
	lines := bytes.Split(t.tail, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimRight(lines[i], "\r")
		switch {
		case string(line) == want:
			if i == 0 && t.n > int64(len(t.tail)) {
				return ErrIncomplete // the window may have cut a longer line
			}
			return nil
		case len(line) == 0, string(line) == "--", bytes.HasPrefix(line, []byte(`\unrestrict `)):
			continue
		default:
			return ErrIncomplete
		}
	}
	return ErrIncomplete
}
