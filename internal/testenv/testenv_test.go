package testenv

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skipf and Fatalf. Like the real
// ones they end the goroutine, so run calls them in a goroutine of its own.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, a ...any) {
	r.skipped = fmt.Sprintf(format, a...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
	runtime.Goexit()
}

// run calls fn in a new goroutine and waits for it to end.
func (r *recorder) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// closedAddr returns an address on which nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRequire(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	down := closedAddr(t)

	tests := []struct {
		name, addr, env string
		skip, fail      string // substrings; "" means it must not happen
	}{
		{"reachable", l.Addr().String(), "1", "", ""},
		{"unreachable skips", down, "", "not reachable at " + down + "; skipping (set BK_REQUIRE_SERVICES=1", ""},
		{"unreachable fails when required", down, "1", "", "Svc at " + down + " is required (BK_REQUIRE_SERVICES=1) but unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			rec := &recorder{TB: t}
			rec.run(func() { Require(rec, "Svc", tc.addr) })
			check(t, "skip", rec.skipped, tc.skip)
			check(t, "failure", rec.failed, tc.fail)
		})
	}
}

func TestRequireCommand(t *testing.T) {
	t.Setenv(RequireEnv, "")
	rec := &recorder{TB: t}
	var path string
	rec.run(func() { path = RequireCommand(rec, "sh") })
	if path == "" || rec.skipped != "" || rec.failed != "" {
		t.Fatalf("sh: path %q, skipped %q, failed %q", path, rec.skipped, rec.failed)
	}
	rec.run(func() { RequireCommand(rec, "bk-no-such-program") })
	check(t, "skip", rec.skipped, "bk-no-such-program not found on PATH; skipping")

	t.Setenv(RequireEnv, "1")
	rec = &recorder{TB: t}
	rec.run(func() { RequireCommand(rec, "bk-no-such-program") })
	check(t, "failure", rec.failed, "is required (BK_REQUIRE_SERVICES=1)")
	check(t, "skip", rec.skipped, "")
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if want == "" && got != "" || !strings.Contains(got, want) {
		t.Errorf("%s: got %q, want one containing %q", what, got, want)
	}
}
