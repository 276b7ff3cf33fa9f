package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns skips into failures.
const RequireEnv = "BK_REQUIRE_SERVICES"

// dialTimeout bounds how long Require waits for a service to accept.
const dialTimeout = 2 * time.Second

// required reports whether missing dependencies must fail the test.
func required() bool { return os.Getenv(RequireEnv) == "1" }

// Require checks that service (a human name such as "PostgreSQL") accepts
// TCP connections at addr (host:port). If it does not, the test is skipped,
// or fails when BK_REQUIRE_SERVICES=1.
func Require(t testing.TB, service, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err == nil {
		_ = conn.Close()
		return
	}
	if required() {
		t.Fatalf("%s at %s is required (%s=1) but unreachable: %v", service, addr, RequireEnv, err)
	}
	t.Skipf("%s not reachable at %s; skipping (set %s=1 to fail instead)", service, addr, RequireEnv)
}

// RequireCommand checks that the program name is on PATH and returns its
// path. If it is not, the test is skipped, or fails when
// BK_REQUIRE_SERVICES=1.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("command %s not found on PATH", name)
	if required() {
		t.Fatalf("%s is required (%s=1): %v", msg, RequireEnv, err)
	}
	t.Skipf("%s; skipping (set %s=1 to fail instead)", msg, RequireEnv)
	return ""
}

// LockServer serialises tests, across the test binaries that `go test ./...`
// runs in parallel, that depend on the list of databases of one shared
// server. Tests that create or drop databases take a shared lock; a test that
// enumerates every database (postgres://host/*) takes the exclusive lock so
// that no database appears or vanishes under it. The lock is an flock on a
// file in the temporary directory, released when the test ends.
func LockServer(t testing.TB, server string, exclusive bool) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "bk-test-"+server+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("lock %s: %v", server, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		_ = f.Close()
		t.Fatalf("lock %s: %v", server, err)
	}
	t.Cleanup(func() { _ = f.Close() })
}
