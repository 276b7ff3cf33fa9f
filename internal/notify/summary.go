package notify

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// shortID is how many characters of a snapshot ID the summary shows.
const shortID = 8

// Title returns the one-line title of ev, "bk: JOB STATUS on HOST", used as
// the mail subject and the ntfy title. Control characters are replaced by
// spaces, so a job or host name cannot inject header lines.
func Title(ev Event) string {
	return oneLine(fmt.Sprintf("bk: %s %s on %s", ev.Job, ev.Status, ev.Host))
}

// Summary returns a short plain-text report of ev: job, status, host,
// duration, the job's error, and one line per snapshot with its name, short
// ID and bytes read and added, or its error.
//
//	bk: job nightly failure on db1
//	started 2025-03-01T02:00:00Z, took 1m12s
//	error: 1 of 2 snapshots failed
//
//	  postgres:app  3f2a9c1e  read 1.2 GiB, added 48.0 MiB
//	  mysql:shop    failed: dump: exit status 2
func Summary(ev Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bk: job %s %s on %s\n", oneLine(ev.Job), oneLine(ev.Status), oneLine(ev.Host))
	if !ev.Started.IsZero() {
		fmt.Fprintf(&b, "started %s", ev.Started.UTC().Format(time.RFC3339))
		if !ev.Finished.IsZero() {
			fmt.Fprintf(&b, ", took %s", duration(ev.Finished.Sub(ev.Started)))
		}
		b.WriteByte('\n')
	}
	if ev.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", indent(ev.Error))
	}
	if len(ev.Snapshots) == 0 {
		return b.String()
	}
	b.WriteByte('\n')
	width := 0
	for _, s := range ev.Snapshots {
		width = max(width, utf8.RuneCountInString(snapshotName(s)))
	}
	for _, s := range ev.Snapshots {
		name := snapshotName(s)
		fmt.Fprintf(&b, "  %-*s", width, name)
		id := oneLine(s.ID)
		if len(id) > shortID {
			id = id[:shortID]
		}
		if id != "" {
			fmt.Fprintf(&b, "  %s", id)
		}
		switch {
		case s.Error != "":
			fmt.Fprintf(&b, "  failed: %s", indent(s.Error))
		default:
			fmt.Fprintf(&b, "  read %s, added %s", size(s.Bytes), size(s.Added))
			if s.Status != "" && s.Status != StatusSuccess {
				fmt.Fprintf(&b, " (%s)", oneLine(s.Status))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// snapshotName is the name shown for s: its name, else its source.
func snapshotName(s Snapshot) string {
	if s.Name != "" {
		return oneLine(s.Name)
	}
	if s.Source != "" {
		return oneLine(s.Source)
	}
	return "?"
}

// oneLine replaces control characters in s with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// indent keeps a multi-line message readable under its first line.
func indent(s string) string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	return strings.ReplaceAll(s, "\n", "\n    ")
}

// duration renders d to the second, or to the millisecond under a second.
func duration(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// size renders n bytes with a binary unit.
func size(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
