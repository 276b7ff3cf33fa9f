package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// receiver records the requests of the notification targets.
type receiver struct {
	mu   sync.Mutex
	hits []string // "METHOD PATH BODY"
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.hits = append(rc.hits, r.Method+" "+r.URL.Path+" "+string(b))
	rc.mu.Unlock()
}

func (rc *receiver) find(prefix string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, h := range rc.hits {
		if strings.HasPrefix(h, prefix) {
			out = append(out, h)
		}
	}
	return out
}

// TestE2ERun runs configured jobs: hooks with their environment, a job
// whose source fails, one whose before hook fails, one whose hook hangs,
// retention, notifications, metrics, the job lock and a dry run.
func TestE2ERun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := sqliteDB(t, dir)
	tree := filepath.Join(dir, "www")
	writeTree(t, tree)
	pw := filepath.Join(dir, "repo.pass")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(dir, "repo")
	hooks := filepath.Join(dir, "hooks.log")
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadHook := "http://" + ln.Addr().String() + "/hook"
	_ = ln.Close()

	conf := filepath.Join(dir, "bk.toml")
	writeConf := func(extra string) {
		t.Helper()
		c := fmt.Sprintf(`[repository]
path = %[1]q
password_file = %[2]q

[jobs.app]
sources = ["sqlite://%[3]s", %[4]q]
tags = ["nightly"]
keep_last = 2
before = ["echo before $BK_JOB >> %[5]s"]
after = ["echo after $BK_JOB $BK_STATUS $BK_SNAPSHOT_IDS >> %[5]s"]

[jobs.app.notify]
webhook = "%[6]s/hook"
healthchecks = "%[6]s/hc"
on = ["success", "failure", "suspicious"]

[jobs.broken]
sources = ["sqlite://%[7]s"]
on_error = ["echo on_error $BK_JOB $BK_STATUS >> %[5]s"]

[jobs.broken.notify]
webhook = %[8]q
%[9]s`, repoDir, pw, db, tree, hooks, srv.URL, filepath.Join(dir, "missing.db"), deadHook, extra)
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf("")
	state := filepath.Join(dir, "state")
	env := baseEnv("BK_CONFIG="+conf, "BK_STATE_DIR="+state)
	run := func(args ...string) result { return runBK(t, env, nil, args...) }
	runBK(t, baseEnv("BK_REPO="+repoDir, "BK_PASSWORD="+testPassword), nil, "init")

	prom := filepath.Join(dir, "bk.prom")
	res := run("run", "--metrics-file", prom)
	res.wantFail(t, exitFailure, "failed")
	out := string(res.stdout)
	// broken's webhook is unreachable: a warning, not a failure of its own.
	for _, want := range []string{"app", "broken", "snapshot", "ok", "failed", "missing.db", "metrics", "notify", "warning"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	log, _ := os.ReadFile(hooks)
	if !strings.Contains(string(log), "before app") || !strings.Contains(string(log), "after app success ") ||
		!strings.Contains(string(log), "on_error broken failure") {
		t.Fatalf("hooks ran as:\n%s", log)
	}
	// The webhook got the success of app; healthchecks its start and success.
	hooksJSON := rc.find("POST /hook ")
	if len(hooksJSON) != 1 {
		t.Fatalf("webhook calls: %v", rc.hits)
	}
	var ev struct {
		Job, Status string
		Snapshots   []struct{ Name, ID string }
	}
	if err := json.Unmarshal([]byte(strings.SplitN(hooksJSON[0], " ", 3)[2]), &ev); err != nil || ev.Job != "app" || ev.Status != "success" || len(ev.Snapshots) != 2 {
		t.Fatalf("webhook event %+v (%v)", ev, err)
	}
	if len(rc.find("POST /hc/start")) != 1 || len(rc.find("POST /hc ")) != 1 {
		t.Fatalf("healthchecks pings: %v", rc.hits)
	}
	metrics, err := os.ReadFile(prom)
	if err != nil || !strings.Contains(string(metrics), `bk_last_success_timestamp_seconds{job="app",source="sqlite:app.db"}`) ||
		!strings.Contains(string(metrics), "bk_repository_snapshots") {
		t.Fatalf("metrics (%v):\n%s", err, metrics)
	}

	// Retention keeps two snapshots of each source of app.
	run("run", "app")
	run("run", "app")
	snaps := runBK(t, baseEnv("BK_REPO="+repoDir, "BK_PASSWORD="+testPassword), nil, "snapshots", "--json", "--tag", "job:app")
	var list []snapshotJSONOut
	decodeJSON(t, snaps.stdout, &list)
	if len(list) != 4 {
		t.Fatalf("after three runs with keep_last = 2: %d snapshots of app, want 4", len(list))
	}

	// Check, and its result in the metrics.
	if res := run("run", "app", "--only", "check", "--metrics-file", prom); res.code != 0 {
		t.Fatalf("check: %s", res)
	}
	if m, _ := os.ReadFile(prom); !strings.Contains(string(m), `bk_last_check_success{job="app",source="sqlite:app.db"} 1`) {
		t.Fatalf("no check result in the metrics:\n%s", m)
	}

	// A dry run changes nothing and runs no hook.
	before, _ := os.ReadFile(hooks)
	if res := run("run", "app", "--dry-run"); res.code != 0 || !strings.Contains(string(res.stdout), "would snapshot") {
		t.Fatalf("dry run: %s", res)
	}
	if after, _ := os.ReadFile(hooks); string(after) != string(before) {
		t.Fatal("a dry run ran hooks")
	}

	// A second run of a job that is running fails at its lock, clearly.
	if err := os.MkdirAll(filepath.Join(state, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(state, "locks", "app.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	res = run("run", "app")
	_ = lf.Close()
	if res.code == 0 || !strings.Contains(string(res.stdout), "already running") {
		t.Fatalf("run while the job's lock is held: %s", res)
	}

	// A failing before hook skips the job; a hanging one is killed at the
	// timeout; an unwritable metrics path fails that step only.
	writeConf(`
[jobs.gated]
sources = ["sqlite://` + db + `"]
before = ["echo no; exit 3"]

[jobs.hangs]
sources = ["sqlite://` + db + `"]
before = ["sleep 60"]
hook_timeout = "1s"
`)
	res = run("run", "gated", "hangs", "--metrics-file", filepath.Join(dir, "no", "such", "dir", "bk.prom"))
	out = string(res.stdout)
	if res.code == 0 || !strings.Contains(out, "exit status 3") || !strings.Contains(out, "skipped") ||
		!strings.Contains(out, "did not finish within 1s") || !strings.Contains(out, "no/such/dir") {
		t.Fatalf("failing hooks and metrics path:\n%s", res)
	}
	// A malformed config is a usage error naming the line.
	if err := os.WriteFile(conf, []byte("[repository]\npath = \"/x\"\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("run").wantFail(t, exitUsage, "bk.toml:3")
}
