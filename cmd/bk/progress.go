package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/bk-backup/bk/repo"
)

// progressLine redraws one status line on a terminal while work runs.
type progressLine struct {
	w     io.Writer
	p     *repo.Progress
	verb  string
	added bool
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startProgress shows progress on stderr when it is a terminal and output is
// not for machines; otherwise it does nothing.
func (a *app) startProgress(p *repo.Progress, verb string, added bool) *progressLine {
	pl := &progressLine{w: a.stderr, p: p, verb: verb, added: added, start: time.Now(), stop: make(chan struct{})}
	if a.quiet || a.jsonOut || !isTerminal(a.stderr) {
		return pl
	}
	pl.wg.Add(1)
	go func() {
		defer pl.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pl.stop:
				fmt.Fprint(pl.w, "\r\033[K")
				return
			case <-t.C:
				pl.draw()
			}
		}
	}()
	return pl
}

func (pl *progressLine) draw() {
	n := pl.p.Bytes.Load()
	secs := time.Since(pl.start).Seconds()
	line := fmt.Sprintf("%s %s, %.1f MB/s", pl.verb, formatBytes(n), float64(n)/1e6/max(secs, 0.001))
	if pl.added {
		line += fmt.Sprintf(", %s new", formatBytes(pl.p.Added.Load()))
	}
	fmt.Fprintf(pl.w, "\r\033[K%s", line)
}

// done stops the display and clears the line.
func (pl *progressLine) done() {
	close(pl.stop)
	pl.wg.Wait()
}

// isTerminal reports whether v is a file open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
