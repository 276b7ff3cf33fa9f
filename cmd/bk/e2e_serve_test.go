package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/testenv"
)

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startServe starts bk serve on a free port with env and waits until it
// answers.
func startServe(t *testing.T, env []string) (*bgProc, string) {
	t.Helper()
	addr := freeAddr(t)
	p := (&testRepo{t: t, env: env}).start(nil, "serve", "--listen", addr)
	base := "http://" + addr
	waitFor(t, 30*time.Second, "bk serve to answer", func() bool {
		if p.exited() {
			t.Fatalf("bk serve exited:\n%s", p.wait())
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return p, base
}

// get fetches url and returns the status code and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestE2EServe serves the state of a job that ran (metrics, healthz, the
// status page and a screenshot of it), then of one that never ran, and
// checks that a non-loopback address is refused.
func TestE2EServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := sqliteDB(t, dir)
	pw := filepath.Join(dir, "repo.pass")
	writeFile(t, pw, []byte(testPassword+"\n"))
	repoDir := filepath.Join(dir, "repo")
	runBK(t, baseEnv("BK_REPO="+repoDir, "BK_PASSWORD="+testPassword), nil, "init")
	writeConf := func(name, jobs string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		writeFile(t, path, fmt.Appendf(nil, "[repository]\npath = %q\npassword_file = %q\n\n%s", repoDir, pw, jobs))
		return path
	}
	appJob := fmt.Sprintf("[jobs.app]\nsources = [\"sqlite://%s\"]\nschedule = \"daily\"\n", db)
	conf := writeConf("bk.toml", appJob)
	state := filepath.Join(dir, "state")
	env := baseEnv("BK_CONFIG="+conf, "BK_STATE_DIR="+state)
	if res := runBK(t, env, nil, "run"); res.code != 0 {
		t.Fatalf("bk run:\n%s\n%s", res, res.stdout)
	}
	if res := runBK(t, env, nil, "run", "--only", "check"); res.code != 0 {
		t.Fatalf("bk run --only check:\n%s\n%s", res, res.stdout)
	}

	// Without authentication, bk serve stays on loopback unless told.
	res := runBK(t, env, nil, "serve", "--listen", "0.0.0.0:0")
	res.wantFail(t, exitUsage, "not a loopback address", "no authentication", "--allow-remote")

	p, base := startServe(t, env)
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, `bk_last_success_timestamp_seconds{job="app",source="sqlite:app.db"}`) ||
		!strings.Contains(body, `bk_last_check_success{job="app",source="sqlite:app.db"} 1`) {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body = get(t, base+"/")
	for _, want := range []string{"<svg", "app", "sqlite:app.db", "daily", "passed", "Every scheduled job is on time (1 scheduled job)", repoDir, version} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if code != http.StatusOK || strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Fatalf("status page: %d, or it has a script or an external link\n%s", code, body)
	}
	if code, _ := get(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}

	t.Run("screenshot", func(t *testing.T) {
		chromium := testenv.RequireCommand(t, "chromium")
		png := filepath.Join(t.TempDir(), "status.png")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
			"--user-data-dir="+t.TempDir(), "--screenshot="+png, "--window-size=1200,900", base+"/")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chromium: %v\n%s", err, out)
		}
		b := readFile(t, png)
		if len(b) < 10<<10 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("screenshot: %d bytes, starting %q; want a PNG over 10 KiB", len(b), b[:min(len(b), 8)])
		}
		if keep := os.Getenv("BK_TEST_SCREENSHOT"); keep != "" {
			writeFile(t, keep, b)
		}
	})

	// SIGTERM stops it gracefully: exit 0.
	if err := syscall.Kill(p.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := p.wait(); res.code != 0 || !strings.Contains(string(res.stdout), "shutting down") {
		t.Fatalf("after SIGTERM:\n%s\n%s", res, res.stdout)
	}

	// A scheduled job that never ran makes /healthz fail, naming it; app is
	// still on time.
	conf2 := writeConf("bk2.toml", appJob+fmt.Sprintf("\n[jobs.never]\nsources = [\"sqlite://%s\"]\nschedule = \"hourly\"\n\n[jobs.manual]\nsources = [\"sqlite://%s\"]\n", db, db))
	_, base = startServe(t, baseEnv("BK_CONFIG="+conf2, "BK_STATE_DIR="+state))
	code, body = get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "job never: no good snapshot yet") ||
		strings.Contains(body, "job app") || strings.Contains(body, "manual") || strings.Count(body, "\n") != 1 {
		t.Fatalf("/healthz with a job that never ran: %d\n%s", code, body)
	}
	code, body = get(t, base+"/")
	if code != http.StatusOK || !strings.Contains(body, "1 of 2 scheduled jobs late") || !strings.Contains(body, "never") {
		t.Fatalf("status page with a late job: %d\n%s", code, body)
	}
}
