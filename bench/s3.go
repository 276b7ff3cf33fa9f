package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bk-backup/bk/bench/gen"
	"github.com/bk-backup/bk/store"
)

// s3Result is the S3 benchmark: bk on a repository in a real S3 server
// (versitygw, on 127.0.0.1, storing its objects on the work folder's disk)
// beside bk on a local repository, with the same streams. Each round makes
// both repositories afresh (the local one with the config and keys of the
// S3 one, so both cut the same chunks) and snapshots night 1 (the dump: a
// first snapshot) and night 2 (night 1 with -night2-edits of its rows edited, whose
// delta bases come from the local base cache on S3); then night 1 is
// restored to /dev/null from each, and `bk snapshots` is timed with a warm
// and with a cold cache.
type s3Result struct {
	Size   int64 `json:"size"`         // night 1
	Night2 int64 `json:"night2_bytes"` // night 2
	// Server is versitygw's path and version; Endpoint its address.
	Server   string  `json:"server"`
	Endpoint string  `json:"endpoint"`
	Rounds   int     `json:"rounds"`
	Local    []s3Run `json:"local"`
	S3       []s3Run `json:"s3"`
	// Verified says bk restored night 2 from S3 byte for byte (untimed).
	Verified bool `json:"verified"`
	// Fetch is the cost of a base fetch from each repository, by depth.
	Fetch   []s3FetchDepth `json:"base_fetch,omitempty"`
	Seconds float64        `json:"seconds"` // wall time of the whole section
	Skipped string         `json:"skipped,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// s3Run is one timed run of bk; ServerCPUSec is the CPU time versitygw used
// meanwhile (user + system, from /proc; 0 for runs on the local repository
// or when it could not be read).
type s3Run struct {
	run
	ServerCPUSec float64 `json:"server_cpu_s,omitempty"`
}

// Names of the S3 benchmark's runs.
const (
	s3First    = "night 1 (first snapshot)"
	s3Night2   = "night 2"
	s3Restore  = "restore night 1"
	s3ListWarm = "snapshots, warm cache"
	s3ListCold = "snapshots, cold cache"
)

// s3Bucket and s3Prefix name the S3 repository in the server.
const (
	s3Bucket = "bench-bucket"
	s3Prefix = "repo"
)

// benchS3 runs the S3 benchmark with the bk binary of bk. orig is night 1;
// when empty, a dump of -size is generated for the section.
func benchS3(ctx context.Context, o options, work, orig string, bk *tool, progress io.Writer) *s3Result {
	start := time.Now()
	res := &s3Result{Rounds: o.s3Rounds}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	bin, err := versitygwPath()
	if err != nil {
		res.Skipped = err.Error()
		fmt.Fprintf(progress, "bench: s3 skipped: %s\n", res.Skipped)
		return res
	}
	res.Server = bin
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		res.Server += " " + versitygwVersion(string(out))
	}
	if err := res.run(ctx, o, work, orig, bk, bin, progress); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (res *s3Result) run(ctx context.Context, o options, work, orig string, bk *tool, bin string, progress io.Writer) error {
	if orig == "" {
		orig = filepath.Join(work, "s3-night1.sql")
		fmt.Fprintf(progress, "bench: s3: generating night 1 (%s)\n", formatSize(o.size))
		f, err := newAsyncFile(orig)
		if err != nil {
			return err
		}
		_, err = gen.Generate(f, nil, gen.Config{Size: o.size, Seed: o.seed, EditFraction: -1})
		if err = errors.Join(err, f.Close()); err != nil {
			return fmt.Errorf("night 1: %w", err)
		}
	}
	// Night 2 is the nights benchmark's (same seed and fraction), reused
	// when that benchmark left it in the work folder.
	night2 := filepath.Join(work, "night2.sql")
	if _, err := os.Stat(night2); err != nil || filepath.Dir(orig) != work || filepath.Base(orig) != "dump.sql" {
		night2 = filepath.Join(work, "s3-night2.sql")
		fmt.Fprintf(progress, "bench: s3: generating night 2 (%.2f%% of rows of night 1 edited)\n", 100*o.night2Edits)
		if _, err := editFile(orig, night2, gen.EditConfig{Seed: o.seed<<8 + 2, Fraction: o.night2Edits}); err != nil {
			return fmt.Errorf("night 2: %w", err)
		}
	}
	for _, x := range []struct {
		file string
		n    *int64
	}{{orig, &res.Size}, {night2, &res.Night2}} {
		fi, err := os.Stat(x.file)
		if err != nil {
			return err
		}
		*x.n = fi.Size()
	}

	gwDir := filepath.Join(work, "s3-server")
	if err := os.MkdirAll(gwDir, 0o755); err != nil {
		return err
	}
	gw, err := startVersitygw(ctx, bin, gwDir)
	if err != nil {
		return err
	}
	defer gw.stop()
	res.Endpoint = gw.addr

	local := newBKAt(bk.bin, work, o.level, "repo-bk-s3-local")
	local.Name = "bk local"
	remote := newBKS3(bk.bin, work, o.level, gw, filepath.Join(gwDir, s3Bucket, s3Prefix))
	cache := filepath.Join(work, "cache-s3")
	remote.env = append(remote.env, "BK_CACHE_DIR="+cache)

	loc := map[*tool]string{local: local.repo, remote: remote.initArgs[2]}
	// measure runs t once and records the run, with versitygw's CPU time
	// for the S3 repository.
	measure := func(t *tool, name string, args []string, in string, size int64) (s3Run, error) {
		cpu0 := gw.cpu()
		var x run
		var err error
		switch {
		case in != "":
			x, err = t.snapshot(ctx, name, 0, in)
		case size > 0:
			x, err = t.restore(ctx, name, args, size)
		default:
			x, err = t.exec(ctx, name, args, "", io.Discard)
		}
		r := s3Run{run: x}
		if t == remote {
			if cpu0 >= 0 {
				r.ServerCPUSec = math.Round(max(gw.cpu()-cpu0, 0)*100) / 100 // whole ticks
			}
			res.S3 = append(res.S3, r)
		} else {
			res.Local = append(res.Local, r)
		}
		return r, err
	}

	if o.s3Profile != "" {
		if err := os.MkdirAll(o.s3Profile, 0o755); err != nil {
			return err
		}
	}
	var ids [2]string // night 1's snapshot in the local and the S3 repository
	for round := 1; round <= o.s3Rounds; round++ {
		fmt.Fprintf(progress, "bench: s3: round %d of %d: init, night 1, night 2\n", round, o.s3Rounds)
		// Fresh repositories: for S3 the prefix's folder in the server's
		// storage goes (the bucket stays), and the cache with it.
		if err := os.RemoveAll(cache); err != nil {
			return err
		}
		if err := remote.initRepo(ctx); err != nil {
			return err
		}
		if err := copyRepoConfig(remote.repo, local.repo); err != nil {
			return err
		}
		// Each round alternates which repository goes first.
		order := []int{0, 1}
		if round%2 == 0 {
			order = []int{1, 0}
		}
		for _, op := range []string{s3First, s3Night2} {
			for _, i := range order {
				t := []*tool{local, remote}[i]
				in, env := orig, t.env
				if op == s3Night2 {
					in = night2
				} else if o.s3Profile != "" && round == o.s3Rounds {
					t.env = append(env[:len(env):len(env)], "BK_CPUPROFILE="+filepath.Join(o.s3Profile,
						strings.ReplaceAll(t.Name, " ", "-")+"-night1.pprof"))
				}
				x, err := measure(t, op, nil, in, 0)
				t.env = env
				if err != nil {
					return err
				}
				if op == s3First {
					ids[i] = x.Reported.ID
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	for round := 1; round <= o.s3Rounds; round++ {
		fmt.Fprintf(progress, "bench: s3: restore night 1, round %d of %d\n", round, o.s3Rounds)
		for i, t := range []*tool{local, remote} {
			if _, err := measure(t, s3Restore, []string{"restore", ids[i], "--repo", loc[t], "--stdout"}, "", res.Size); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(progress, "bench: s3: bk snapshots\n")
	for range o.s3Rounds {
		for _, t := range []*tool{local, remote} {
			if _, err := measure(t, s3ListWarm, []string{"snapshots", "--repo", loc[t]}, "", 0); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(progress, "bench: s3: base fetch from both repositories\n")
	if res.Fetch, err = benchS3Fetch(ctx, local.repo, loc[remote], gw, o.fetchSamples, o.seed); err != nil {
		return fmt.Errorf("base fetch: %w", err)
	}
	fmt.Fprintf(progress, "bench: s3: verify the restore of night 2 from S3\n")
	if err := remote.verifyStream(ctx, remote.restArgs, night2); err != nil {
		return err
	}
	res.Verified = true
	// Last: the cold runs delete the cache, base cache included.
	for range o.s3Rounds {
		if err := os.RemoveAll(cache); err != nil {
			return err
		}
		if _, err := measure(remote, s3ListCold, []string{"snapshots", "--repo", loc[remote]}, "", 0); err != nil {
			return err
		}
	}
	return nil
}

// copyRepoConfig makes dst a repository with the config and keys of the
// new, empty repository whose files are under src (the S3 repository's
// objects in the server's storage: the same layout as a local one). Then
// both have the same chunker polynomial, which is random per repository,
// so they cut the streams into the same chunks and the comparison measures
// the backends, not the polynomials.
func copyRepoConfig(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	for _, t := range store.AllTypes {
		if t != store.ConfigFile {
			if err := os.MkdirAll(filepath.Join(dst, string(t)), 0o700); err != nil {
				return err
			}
		}
	}
	keys, err := os.ReadDir(filepath.Join(src, string(store.KeyFile)))
	if err != nil {
		return fmt.Errorf("copy the S3 repository's keys: %w", err)
	}
	files := []string{string(store.ConfigFile)}
	for _, k := range keys {
		files = append(files, filepath.Join(string(store.KeyFile), k.Name()))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, f), b, 0o600)
		}
		if err != nil {
			return fmt.Errorf("copy the S3 repository's config: %w", err)
		}
	}
	return nil
}

// newBKS3 drives bk on the S3 repository s3Bucket/s3Prefix of gw, whose
// objects are the files under stored (so the repository's growth is
// measured as for a local one, and initRepo's removal empties the prefix).
func newBKS3(bin, work, level string, gw *versitygw, stored string) *tool {
	t := newBKAt(bin, work, level, "unused")
	loc := fmt.Sprintf("s3:http://%s/%s/%s", gw.addr, s3Bucket, s3Prefix)
	t.Name, t.repo = "bk s3", stored
	t.env = append(t.env, "AWS_ACCESS_KEY_ID="+gw.access, "AWS_SECRET_ACCESS_KEY="+gw.secret)
	t.initArgs = []string{"init", "--repo", loc}
	t.snapArgs = func(int) []string {
		return []string{"snapshot", "--repo", loc, "--stdin", "--name", "bench", "--json"}
	}
	t.restArgs = []string{"restore", "latest", "--repo", loc, "--name", "bench", "--stdout"}
	return t
}

// versitygwPath returns versitygw on PATH, else in $GOPATH/bin.
func versitygwPath() (string, error) {
	if path, err := exec.LookPath("versitygw"); err == nil {
		return path, nil
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		path := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", errors.New("versitygw is not on PATH nor in $GOPATH/bin (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
}

// versitygw is a running server with one root user.
type versitygw struct {
	addr           string // 127.0.0.1:PORT, plain http
	access, secret string
	cmd            *exec.Cmd
	exited         chan struct{}
}

// startVersitygw starts versitygw on a free 127.0.0.1 port, serving dir
// with random root credentials, as store/s3test does, and waits until it
// answers.
func startVersitygw(ctx context.Context, bin, dir string) (*versitygw, error) {
	var lastErr error
	for range 3 { // the free port may be taken before versitygw binds it
		gw, err := runVersitygw(ctx, bin, dir)
		if err == nil {
			return gw, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start versitygw: %w", lastErr)
}

func runVersitygw(ctx context.Context, bin, dir string) (*versitygw, error) {
	var key [29]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	gw := &versitygw{addr: l.Addr().String(), access: "AK" + hex.EncodeToString(key[:9]),
		secret: hex.EncodeToString(key[9:]), exited: make(chan struct{})}
	_ = l.Close()
	gw.cmd = exec.CommandContext(ctx, bin, "--access", gw.access, "--secret", gw.secret,
		"--region", "us-east-1", "--port", gw.addr, "--quiet", "posix", dir)
	gw.cmd.Env = append(os.Environ(), "VGW_LOG_LEVEL=silent")
	// One writer for both: exec calls its Write from one goroutine at a
	// time; it is read only after the server has exited.
	out := &cappedBuffer{max: 64 << 10}
	gw.cmd.Stdout, gw.cmd.Stderr = out, out
	if err := gw.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = gw.cmd.Wait()
		close(gw.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + gw.addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("Server") != "" || resp.StatusCode == http.StatusForbidden {
				return gw, nil
			}
		}
		select {
		case <-gw.exited:
			return nil, fmt.Errorf("versitygw exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			gw.stop() // then out can be read
			return nil, fmt.Errorf("versitygw did not answer at %s within 20s: %v; output: %s",
				gw.addr, err, strings.TrimSpace(out.String()))
		}
	}
}

// cappedBuffer keeps the first max bytes written to it: enough to tell
// what went wrong.
type cappedBuffer struct {
	buf []byte
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p[:min(len(p), max(b.max-len(b.buf), 0))]...)
	return len(p), nil
}

func (b *cappedBuffer) String() string { return string(b.buf) }

// stop ends the server: SIGTERM, then SIGKILL after 5 s.
func (gw *versitygw) stop() {
	_ = gw.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-gw.exited:
	case <-time.After(5 * time.Second):
		_ = gw.cmd.Process.Kill()
		<-gw.exited
	}
}

// cpu returns the server's CPU time so far in seconds, or -1 when it
// cannot be read (not Linux).
func (gw *versitygw) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", gw.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return procStatCPU(string(b))
}

// procStatCPU returns utime + stime of a /proc/PID/stat line in seconds
// (USER_HZ is 100 on every Linux architecture Go supports), or -1.
func procStatCPU(stat string) float64 {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	// After the command name: state is field 3, utime 14, stime 15.
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return float64(u+s) / 100
}

// s3Median returns the run of median wall time among the runs with the
// given name, how many there are and all their wall times or MB/s, in order.
func s3Median(runs []s3Run, name string) (s3Run, int, string) {
	var plain []run
	var all []string
	for _, r := range runs {
		if r.Name != name {
			continue
		}
		plain = append(plain, r.run)
		if r.MBps > 0 {
			all = append(all, fmt.Sprintf("%.0f", r.MBps))
		} else {
			all = append(all, fmt.Sprintf("%.2f s", r.WallSec))
		}
	}
	m, n := median(plain, name)
	for _, r := range runs {
		if r.Name == name && r.run == m {
			return r, n, strings.Join(all, ", ")
		}
	}
	return s3Run{}, 0, ""
}

// s3Targets are the S3 benchmark's targets: S3 over local throughput, or
// an absolute time.
var s3Targets = map[string]struct {
	share float64 // minimum S3/local throughput
	secs  float64 // maximum wall time on S3
}{
	s3First:    {share: 0.8},
	s3Restore:  {share: 0.7},
	s3ListWarm: {secs: 1},
}

// s3Target evaluates the target of the named run, if it has one: the text
// of the target and whether it is met (ok is false when unmeasured).
func (res *s3Result) s3Target(name string) (want, got string, ok, known bool) {
	t, has := s3Targets[name]
	if !has {
		return "", "", false, false
	}
	l, _, _ := s3Median(res.Local, name)
	s, n, _ := s3Median(res.S3, name)
	if t.secs > 0 {
		want = fmt.Sprintf("< %.0f s", t.secs)
		if n == 0 {
			return want, "", false, false
		}
		return want, fmt.Sprintf("%.2f s", s.WallSec), s.WallSec < t.secs, true
	}
	want = fmt.Sprintf(">= %.0f%% of local", 100*t.share)
	if l.MBps <= 0 || s.MBps <= 0 {
		return want, "", false, false
	}
	return want, fmt.Sprintf("%.0f%% (%.0f / %.0f MB/s)", 100*s.MBps/l.MBps, s.MBps, l.MBps), s.MBps >= t.share*l.MBps, true
}

func printS3(w io.Writer, res *s3Result) {
	if res == nil {
		return
	}
	fmt.Fprintf(w, "\n== S3: bk on versitygw at 127.0.0.1 (posix, the work folder's disk) vs a local repository\n")
	if res.Skipped != "" {
		fmt.Fprintf(w, "skipped: %s\n", res.Skipped)
		return
	}
	runs := fmt.Sprintf("each figure is the median of %d runs (all runs listed)", res.Rounds)
	if res.Rounds == 1 {
		runs = "one run of each (-s3-rounds 1)"
	}
	fmt.Fprintf(w, "server %s; night 1 %s, night 2 %s; %s;\n", res.Server, formatSize(res.Size), formatSize(res.Night2), runs)
	fmt.Fprintln(w, "server and bk share this machine's CPUs, so the S3 figures include versitygw's work;")
	fmt.Fprintln(w, "the local repository of each round has the S3 one's config and keys: the same chunker polynomial, the same chunks")
	tw := newTable(w)
	fmt.Fprintln(tw, "run\trepo\twall s\tMB/s\tbk CPU s\tserver CPU s\tpeak RSS\tstored\tS3/local\ttarget\t\truns")
	for _, name := range []string{s3First, s3Night2, s3Restore, s3ListWarm, s3ListCold} {
		want, got, ok, known := res.s3Target(name)
		mark := ""
		switch {
		case want == "":
		case !known:
			mark = "n/a"
		case ok:
			mark = "ok"
		default:
			mark = "below"
		}
		l, nl, _ := s3Median(res.Local, name)
		for i, x := range []struct {
			repo string
			runs []s3Run
		}{{"local", res.Local}, {"s3", res.S3}} {
			m, n, all := s3Median(x.runs, name)
			if n == 0 {
				continue
			}
			rate, stored, server, share, target, mk := "-", "-", "-", "", "", ""
			if m.MBps > 0 {
				rate = fmt.Sprintf("%.0f", m.MBps)
			}
			if m.StreamBytes > 0 && name != s3Restore {
				stored = formatSize(m.Added)
			}
			if i == 1 {
				server = fmt.Sprintf("%.2f", m.ServerCPUSec)
				target, mk = want, mark
				switch {
				case nl > 0 && m.MBps > 0 && l.MBps > 0:
					share = fmt.Sprintf("%.0f%%", 100*m.MBps/l.MBps)
				case nl > 0 && m.MBps == 0:
					share = fmt.Sprintf("%.2fx the time", m.WallSec/max(l.WallSec, 1e-9))
				}
				if got != "" && !strings.HasSuffix(want, "of local") {
					mk += " (" + got + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, x.repo, m.WallSec, rate, m.CPUSec,
				server, formatSize(m.MaxRSS), stored, share, target, mk, all)
		}
	}
	tw.Flush()
	if res.Verified {
		fmt.Fprintln(w, "bk restored night 2 from S3 byte for byte (SHA-256 checked, untimed)")
	}
	fmt.Fprintln(w, "snapshots: open the repository (key derivation included) and list; cold: BK_CACHE_DIR deleted first")
	printS3Fetch(w, res.Fetch)
	if res.Error != "" {
		fmt.Fprintf(w, "s3 FAILED: %s\n", firstLine(res.Error))
	}
}

// evaluateS3 adds the S3 benchmark's targets to r.
func evaluateS3(r *report) {
	if r.S3 == nil || r.S3.Skipped != "" {
		return
	}
	for _, name := range []string{s3First, s3Restore, s3ListWarm} {
		want, got, ok, known := r.S3.s3Target(name)
		r.Targets = append(r.Targets, target{Name: "bk S3 " + name, Want: want, Got: got, OK: ok, Missing: !known})
	}
}

// runS3 runs the S3 benchmark into r.S3 with night 1 orig (generated at
// -size when empty). A failure of bk is returned; a missing versitygw
// becomes a notice.
func runS3(ctx context.Context, o options, r *report, orig string, tools []*tool, progress io.Writer) error {
	var bk *tool
	for _, t := range tools {
		if t.Name == "bk" {
			bk = t
		}
	}
	if bk == nil {
		return nil
	}
	r.S3 = benchS3(ctx, o, r.Dir, orig, bk, progress)
	if r.S3.Skipped != "" {
		r.Notices = append(r.Notices, "s3 skipped: "+r.S3.Skipped)
	}
	if r.S3.Error != "" {
		r.Notices = append(r.Notices, "s3: "+r.S3.Error)
		return fmt.Errorf("s3: %s", firstLine(r.S3.Error))
	}
	return nil
}

// versitygwVersion returns "version V" from the output of versitygw
// --version ("Version  : V" on one of its lines), or "".
func versitygwVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Version" {
			return "version " + strings.TrimSpace(v)
		}
	}
	return ""
}
