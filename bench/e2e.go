package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bk-backup/bk/chunk"
)

// tool is one backup program under test and how to drive it.
type tool struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Settings string `json:"settings"`
	bin      string
	repo     string
	env      []string
	initArgs []string
	snapArgs func(n int) []string // the n-th snapshot, reading stdin
	restArgs []string             // the latest snapshot to stdout
	bkJSON   bool                 // the snapshot prints bk's JSON summary
}

// run is one timed invocation of a tool.
type run struct {
	Name        string  `json:"name"`
	StreamBytes int64   `json:"stream_bytes"`
	WallSec     float64 `json:"wall_s"`
	CPUSec      float64 `json:"cpu_s"` // user + system of the child
	MBps        float64 `json:"mbps"`
	MaxRSS      int64   `json:"max_rss_bytes"`
	// Added is the growth of the repository directory, in bytes.
	Added int64 `json:"added_bytes"`
	// Reported is bk's own summary of a snapshot.
	Reported *snapshotSummary `json:"reported,omitempty"`
}

// snapshotSummary is the part of `bk snapshot --json` the benchmark reads.
type snapshotSummary struct {
	ID          string `json:"id"`
	Size        int64  `json:"size"`
	AddedBytes  int64  `json:"added_bytes"`
	AddedBlobs  int64  `json:"added_blobs"`
	AddedDeltas int64  `json:"added_deltas"`
	Chunks      int64  `json:"chunks"`
}

// toolResult is what the benchmark learnt about one tool.
type toolResult struct {
	*tool
	Runs  []run  `json:"runs"`
	Error string `json:"error,omitempty"`
}

// find returns the run with the given name, or a zero run.
func (r *toolResult) find(name string) run {
	if r == nil {
		return run{}
	}
	for _, x := range r.Runs {
		if x.Name == name {
			return x
		}
	}
	return run{}
}

// Names of the four runs, in the order they happen.
const (
	runFirst     = "first"
	runIdentical = "identical"
	runEdited    = "edited"
	runRestore   = "restore"
)

const password = "bench-password"

// toolEnv keeps every cache and config of the children inside work.
func toolEnv(work string) []string {
	return []string{
		"XDG_CACHE_HOME=" + filepath.Join(work, "cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(work, "config"),
		"BK_CACHE_DIR=" + filepath.Join(work, "cache", "bk"),
		"RESTIC_CACHE_DIR=" + filepath.Join(work, "cache", "restic"),
		"BORG_BASE_DIR=" + filepath.Join(work, "borg-base"),
	}
}

func newBK(bin, work, level string) *tool { return newBKAt(bin, work, level, "repo-bk") }

// newBKAt drives bk on the repository work/dir; initArgs are added to
// `bk init` (for example --no-delta).
func newBKAt(bin, work, level, dir string, initArgs ...string) *tool {
	repo := filepath.Join(work, dir)
	return &tool{
		Name: "bk", bin: bin, repo: repo,
		Settings: fmt.Sprintf("zstd %s, chunker %s %s-%s avg %s, keyed BLAKE3, AES-256-GCM", level, chunk.AlgorithmRabin,
			formatSize(chunk.DefaultMinSize), formatSize(chunk.DefaultMaxSize), formatSize(1<<chunk.DefaultAverageBits)),
		env:      append(toolEnv(work), "BK_PASSWORD="+password),
		initArgs: append([]string{"init", "--repo", repo}, initArgs...),
		snapArgs: func(int) []string {
			return []string{"snapshot", "--repo", repo, "--stdin", "--name", "bench", "--json"}
		},
		restArgs: []string{"restore", "latest", "--repo", repo, "--name", "bench", "--stdout"},
		bkJSON:   true,
	}
}

func newRestic(bin, work string) *tool { return newResticAt(bin, work, "repo-restic") }

func newResticAt(bin, work, dir string) *tool {
	repo := filepath.Join(work, dir)
	return &tool{
		Name: "restic", bin: bin, repo: repo,
		Settings: "compression auto (zstd default), chunker rabin 512 KiB-8 MiB avg 1 MiB, SHA-256, AES-256-CTR + Poly1305",
		env:      append(toolEnv(work), "RESTIC_PASSWORD="+password),
		initArgs: []string{"init", "-q", "--repo", repo},
		snapArgs: func(int) []string {
			return []string{"-r", repo, "backup", "-q", "--stdin", "--stdin-filename", "dump.sql"}
		},
		restArgs: []string{"-r", repo, "dump", "-q", "latest", "/dump.sql"},
	}
}

// newBorg sets borg's chunker to bk's sizes and its zstd level to the one
// closest to bk's.
func newBorg(bin, work, level string) *tool { return newBorgAt(bin, work, level, "repo-borg") }

func newBorgAt(bin, work, level, dir string) *tool {
	repo := filepath.Join(work, dir)
	zl := map[string]int{"fastest": 1, "default": 3, "better": 7, "best": 19}[level]
	params := fmt.Sprintf("buzhash,%d,%d,%d,4095", log2(chunk.DefaultMinSize), log2(chunk.DefaultMaxSize), chunk.DefaultAverageBits)
	return &tool{
		Name: "borg", bin: bin, repo: repo,
		Settings: fmt.Sprintf("repokey-blake2 (keyed BLAKE2b, AES-256-CTR), --compression zstd,%d, --chunker-params %s", zl, params),
		env:      append(toolEnv(work), "BORG_PASSPHRASE="+password),
		initArgs: []string{"init", "--encryption=repokey-blake2", repo},
		snapArgs: func(n int) []string {
			return []string{"create", "--compression", fmt.Sprintf("zstd,%d", zl), "--chunker-params", params,
				fmt.Sprintf("%s::snap%d", repo, n), "-"}
		},
		restArgs: []string{"extract", "--stdout", repo + "::snap3"}, // the edited copy, the third snapshot
	}
}

func log2(n int) int {
	k := 0
	for n > 1 {
		n >>= 1
		k++
	}
	return k
}

// version asks the tool for its version, best effort.
func (t *tool) version(ctx context.Context, args ...string) {
	out, err := exec.CommandContext(ctx, t.bin, args...).Output()
	if err == nil {
		t.Version = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
}

// exec runs the tool once with stdin from the file in (none if empty) and
// stdout to out, and measures it.
func (t *tool) exec(ctx context.Context, name string, args []string, in string, out io.Writer) (run, error) {
	cmd := exec.CommandContext(ctx, t.bin, args...)
	cmd.Env = append(os.Environ(), t.env...)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r := run{Name: name}
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return r, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	before, err := dirSize(t.repo)
	if err != nil {
		return r, err
	}
	resetPeakRSS()
	start := time.Now()
	err = cmd.Run()
	r.WallSec = time.Since(start).Seconds()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return r, fmt.Errorf("%s %s: %w: %s", t.Name, strings.Join(args, " "), err, msg)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSS = ru.Maxrss * 1024
		r.CPUSec = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	after, err := dirSize(t.repo)
	r.Added = after - before
	return r, err
}

// runAll initialises a repository and does the four runs: first snapshot of
// orig, identical re-snapshot, snapshot of edited, restore of the latest.
func (t *tool) runAll(ctx context.Context, orig, edited string, progress io.Writer) *toolResult {
	res := &toolResult{tool: t}
	if err := t.initRepo(ctx); err != nil {
		res.Error = err.Error()
		return res
	}
	steps := []struct {
		name, in string
		restore  bool
	}{{runFirst, orig, false}, {runIdentical, orig, false}, {runEdited, edited, false}, {runRestore, edited, true}}
	for i, s := range steps {
		fmt.Fprintf(progress, "bench: %s %s\n", t.Name, s.name)
		var r run
		var err error
		if s.restore {
			var fi os.FileInfo
			if fi, err = os.Stat(s.in); err == nil {
				r, err = t.restore(ctx, s.name, t.restArgs, fi.Size())
			}
		} else {
			r, err = t.snapshot(ctx, s.name, i+1, s.in)
		}
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.Runs = append(res.Runs, r)
	}
	return res
}

// initRepo creates the tool's repository afresh.
func (t *tool) initRepo(ctx context.Context) error {
	if err := os.RemoveAll(t.repo); err != nil {
		return err
	}
	_, err := t.exec(ctx, "init", t.initArgs, "", io.Discard)
	return err
}

// snapshot stores the file as the tool's n-th snapshot (from 1) and
// measures it; for bk it also reads and checks the JSON summary.
func (t *tool) snapshot(ctx context.Context, name string, n int, file string) (run, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return run{Name: name}, err
	}
	var stdout bytes.Buffer
	r, err := t.exec(ctx, name, t.snapArgs(n), file, &stdout)
	r.StreamBytes = fi.Size()
	r.MBps = mbps(r.StreamBytes, r.WallSec)
	if err == nil && t.bkJSON {
		r.Reported, err = parseSummary(stdout.Bytes(), fi.Size())
	}
	return r, err
}

// restore runs the tool with args, which restore a stream of size bytes to
// standard output, sends that output to /dev/null and measures the run.
func (t *tool) restore(ctx context.Context, name string, args []string, size int64) (run, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return run{Name: name}, err
	}
	defer devnull.Close()
	r, err := t.exec(ctx, name, args, "", devnull)
	r.StreamBytes = size
	r.MBps = mbps(r.StreamBytes, r.WallSec)
	return r, err
}

// parseSummary reads bk's JSON summary and checks that bk read the whole
// stream.
func parseSummary(out []byte, want int64) (*snapshotSummary, error) {
	var s snapshotSummary
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
		return nil, fmt.Errorf("bk snapshot --json: %w in %q", err, truncate(out, 200))
	}
	if s.ID == "" || s.Size != want {
		return &s, fmt.Errorf("bk snapshot --json: id %q, size %d, want a non-empty id and size %d", s.ID, s.Size, want)
	}
	return &s, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// verifyRestore restores the latest snapshot once more, untimed, and
// compares it with the file it was made from.
func (t *tool) verifyRestore(ctx context.Context, file string) error {
	return t.verifyStream(ctx, t.restArgs, file)
}

// verifyStream runs the tool with args, which restore a stream to standard
// output, untimed, and compares the stream with file.
func (t *tool) verifyStream(ctx context.Context, args []string, file string) error {
	want, err := hashFile(file)
	if err != nil {
		return err
	}
	h := sha256.New()
	cw := &countingWriter{w: h}
	if _, err := t.exec(ctx, "verify", args, "", cw); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("%s restore: %d bytes with SHA-256 %x, want those of %s (%x)", t.Name, cw.n, got, file, want)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// resetPeakRSS lowers this process's peak RSS to its current RSS (Linux 4.0
// and later; best effort). A child's ru_maxrss starts from the peak of the
// address space it was forked from, so without this every child would report
// at least the benchmark's own peak, reached while measuring costs.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// selfRSS returns this process's resident set size from /proc, or 0.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib << 10
		}
	}
	return 0
}

// dirSize is the sum of the sizes of the regular files under dir; a missing
// dir has size 0.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}
