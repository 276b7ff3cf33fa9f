package notify

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSummary(t *testing.T) {
	got := Summary(testEvent(StatusFailure))
	want := `bk: job nightly failure on db1
started 2025-03-01T02:00:00Z, took 1m12s
error: 1 of 2 snapshots failed

  postgres:app  3f2a9c1e  read 1.2 GiB, added 48.0 MiB
  mysql:shop    failed: dump: exit status 2
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestSummaryHostile(t *testing.T) {
	ev := testEvent(StatusSuspicious)
	ev.Job = "a\r\nBcc: evil@example.com"
	ev.Snapshots[0].Error = "line one\nline two\n"
	if title := Title(ev); strings.ContainsAny(title, "\r\n") {
		t.Errorf("title %q holds a line break", title)
	}
	s := Summary(ev)
	if !strings.HasPrefix(s, "bk: job a  Bcc: evil@example.com suspicious on db1\n") {
		t.Errorf("first line of:\n%s", s)
	}
	if !strings.Contains(s, "failed: line one\n    line two\n") {
		t.Errorf("multi-line error not indented:\n%s", s)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB", 1 << 62: "4.0 EiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := string(truncate("short", 10)); got != "short" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("ü", 100)
	for limit := 20; limit < 40; limit++ {
		got := truncate(long, limit)
		if len(got) > limit || !utf8.Valid(got) || !strings.HasSuffix(string(got), "(truncated)\n") {
			t.Errorf("limit %d: %q", limit, got)
		}
	}
}
