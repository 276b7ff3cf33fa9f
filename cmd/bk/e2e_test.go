package main

// End-to-end tests: they build the real bk binary once and run it as a
// subprocess against repositories in temporary folders. This file holds
// TestMain and the helpers; the scenarios live in the other e2e_*_test.go
// files.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bkBin is the path of the binary built by TestMain.
var bkBin string

// testPassword is the password of repositories made by newRepo.
const testPassword = "correct horse battery staple"

// runTimeout bounds one bk invocation, so a hang fails the test instead of
// stalling the whole run.
const runTimeout = 2 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bk-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go tool is not on PATH:", err)
		return 1
	}
	bkBin = filepath.Join(dir, "bk")
	build := exec.Command(goTool, "build", "-o", bkBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build:", err)
		return 1
	}
	return m.Run()
}

// result is the outcome of one bk run.
type result struct {
	args   []string
	code   int // -1 when killed by a signal
	stdout []byte
	stderr []byte
}

func (r result) String() string {
	return fmt.Sprintf("bk %s: exit %d\nstderr: %s", strings.Join(r.args, " "), r.code, r.stderr)
}

// errLine returns the one "bk: ..." error line of stderr. It fails the test
// if there is not exactly one.
func (r result) errLine(t testing.TB) string {
	t.Helper()
	var lines []string
	for l := range strings.SplitSeq(string(r.stderr), "\n") {
		if strings.HasPrefix(l, "bk: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want exactly one \"bk: \" error line, got %d\n%s", len(lines), r)
	}
	return lines[0]
}

// wantFail checks the exit code and that the error line contains every one
// of substrs (case-insensitive).
func (r result) wantFail(t testing.TB, code int, substrs ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d\n%s", code, r)
	}
	line := r.errLine(t)
	for _, s := range substrs {
		if !strings.Contains(strings.ToLower(line), strings.ToLower(s)) {
			t.Errorf("error line lacks %q: %s", s, line)
		}
	}
}

// baseEnv is the environment of every bk run: the test's own, without any
// BK_ variable, plus cheap key derivation.
func baseEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "BK_") })
	return append(append(env, "BK_TEST_KDF=cheap"), extra...)
}

// startBK prepares a bk process in its own session (so it has no controlling
// terminal to prompt on, and its children share its process group).
func startBK(ctx context.Context, env []string, stdin io.Reader, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bkBin, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runBK runs bk to completion.
func runBK(t testing.TB, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	// Not t.Context(): that is cancelled before cleanups, which may run bk.
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := startBK(ctx, env, stdin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return exitResult(t, cmd.Run(), args, &stdout, &stderr)
}

// bgProc is a bk process running in the background.
type bgProc struct {
	t              testing.TB
	cmd            *exec.Cmd
	args           []string
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

// start starts bk in the background. The test's cleanup kills its process
// group and reaps it if the test did not wait for it.
func (r *testRepo) start(stdin io.Reader, args ...string) *bgProc {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	p := &bgProc{t: r.t, args: args, done: make(chan struct{})}
	p.cmd = startBK(ctx, r.env, stdin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		r.t.Fatalf("start bk %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	r.t.Cleanup(func() {
		if !p.exited() { // once reaped, the PID may belong to someone else
			p.kill()
		}
		<-p.done
	})
	return p
}

// pid returns the process ID of bk.
func (p *bgProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *bgProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to bk and every process of its group (the commands it
// runs), as a crash or the OOM killer would.
func (p *bgProc) kill() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// wait waits for the process to exit and returns its result.
func (p *bgProc) wait() result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(runTimeout):
		p.t.Fatalf("bk %s did not exit", strings.Join(p.args, " "))
	}
	return exitResult(p.t, p.err, p.args, &p.stdout, &p.stderr)
}

func exitResult(t testing.TB, err error, args []string, stdout, stderr *bytes.Buffer) result {
	t.Helper()
	res := result{args: args, stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run bk %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// testRepo is a repository folder and the environment that opens it.
type testRepo struct {
	t    testing.TB
	path string
	env  []string // BK_REPO and BK_PASSWORD set
}

// newRepo initialises a repository in a fresh temporary folder with
// BK_PASSWORD=testPassword and the extra init arguments.
func newRepo(t testing.TB, initArgs ...string) *testRepo {
	t.Helper()
	return newRepoAt(t, filepath.Join(t.TempDir(), "repo"), initArgs...)
}

// newRepoAt is newRepo at a given path.
func newRepoAt(t testing.TB, path string, initArgs ...string) *testRepo {
	t.Helper()
	r := &testRepo{t: t, path: path, env: baseEnv("BK_REPO="+path, "BK_PASSWORD="+testPassword)}
	r.must(nil, append([]string{"init"}, initArgs...)...)
	return r
}

// with returns the same repository for use in the (sub)test t.
func (r *testRepo) with(t testing.TB) *testRepo {
	return &testRepo{t: t, path: r.path, env: r.env}
}

// run runs bk with the repository's environment.
func (r *testRepo) run(stdin []byte, args ...string) result {
	r.t.Helper()
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	return runBK(r.t, r.env, in, args...)
}

// runEnv runs bk with the repository's environment plus extra variables
// (later ones win).
func (r *testRepo) runEnv(extra []string, args ...string) result {
	r.t.Helper()
	return runBK(r.t, append(slices.Clone(r.env), extra...), nil, args...)
}

// must runs bk and fails the test unless it exits 0.
func (r *testRepo) must(stdin []byte, args ...string) result {
	r.t.Helper()
	res := r.run(stdin, args...)
	if res.code != 0 {
		r.t.Fatalf("want success\n%s", res)
	}
	return res
}

// snapshot stores data with `snapshot --stdin --json` and the extra args.
func (r *testRepo) snapshot(data []byte, args ...string) snapshotResult {
	r.t.Helper()
	res := r.must(data, append([]string{"snapshot", "--stdin", "--json"}, args...)...)
	var s snapshotResult
	decodeJSON(r.t, res.stdout, &s)
	if s.Size != int64(len(data)) {
		r.t.Fatalf("snapshot %s: size %d, want %d", s.ShortID, s.Size, len(data))
	}
	return s
}

// restore returns the stream of `restore REF --stdout` with the extra args.
func (r *testRepo) restore(ref string, args ...string) []byte {
	r.t.Helper()
	return r.must(nil, append([]string{"restore", ref, "--stdout"}, args...)...).stdout
}

// wantRestore checks that ref restores to exactly want.
func (r *testRepo) wantRestore(ref string, want []byte, args ...string) {
	r.t.Helper()
	if got := r.restore(ref, args...); !bytes.Equal(got, want) {
		r.t.Fatalf("restore %s %v: got %d bytes, want %d (identical: false)", ref, args, len(got), len(want))
	}
}

// snapshots returns the parsed `snapshots --json` list.
func (r *testRepo) snapshots(args ...string) []snapshotJSONOut {
	r.t.Helper()
	res := r.must(nil, append([]string{"snapshots", "--json"}, args...)...)
	var list []snapshotJSONOut
	decodeJSON(r.t, res.stdout, &list)
	return list
}

// snapshotIDs returns the sorted IDs of all snapshots.
func (r *testRepo) snapshotIDs() []string {
	r.t.Helper()
	var ids []string
	for _, s := range r.snapshots() {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// snapshotJSONOut is one element of `snapshots --json`, as a consumer reads it.
type snapshotJSONOut struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Host       string    `json:"host"`
	Name       string    `json:"name"`
	Tags       []string  `json:"tags"`
	Size       int64     `json:"size"`
	AddedBytes int64     `json:"added_bytes"`
	Tree       string    `json:"tree"`
	StreamHash string    `json:"stream_hash"`
	Command    string    `json:"command"`
}

// files returns the names of the stored (non-temporary) files of one
// namespace ("data", "locks", ...), recursively.
func (r *testRepo) files(ns string) []string {
	r.t.Helper()
	return storedFiles(r.t, filepath.Join(r.path, ns))
}

func storedFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a temporary file renamed while we walked
			}
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return out
}

// packPath returns the path of the pack file with the given name.
func (r *testRepo) packPath(name string) string {
	return filepath.Join(r.path, "data", name[:2], name)
}

// decodeJSON parses one JSON document strictly into v.
func decodeJSON(t testing.TB, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("parse JSON: %v\n%s", err, data)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", data)
	}
}

// jsonKeys parses a JSON object and checks it has every key.
func jsonKeys(t testing.TB, data []byte, keys ...string) map[string]any {
	t.Helper()
	var m map[string]any
	decodeJSON(t, data, &m)
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, data)
		}
	}
	return m
}

// randomData returns n incompressible bytes, a function of seed.
func randomData(seed uint64, n int) []byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// readFile reads a file or fails the test.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes a file or fails the test.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every few milliseconds until it holds or the timeout
// passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
