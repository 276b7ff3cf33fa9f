package main

import (
	"bytes"
	"context"
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

	"github.com/bk-backup/bk/bench/gen"
)

// retentionResult is the retention benchmark (issue 5): one repository per
// tool holding Days daily snapshots of one database, each day the one before
// with Fraction of its rows edited and its snapshot time a day later; then
// check, check --read-data, forget --keep-daily Keep and prune are timed on
// each repository.
type retentionResult struct {
	Size     int64   `json:"size"` // day 1's stream
	Days     int     `json:"days"`
	Keep     int     `json:"keep_daily"`
	Fraction float64 `json:"edit_fraction"`
	// Streams is the bytes of all the days together.
	Streams int64 `json:"stream_bytes"`
	// Reused says that day 1 is the run's dump (-retention-size equal to
	// -size); otherwise it was generated for this section.
	Reused bool `json:"reused_dump"`
	// Cold says that the page cache was dropped before every timed cat and
	// check --read-data; false when eviction failed (not Linux).
	Cold     bool             `json:"cold"`
	ColdErr  string           `json:"cold_error,omitempty"`
	Tools    []*retentionTool `json:"tools"`
	Verified bool             `json:"verified"` // bk restored the newest day byte for byte after prune
	Seconds  float64          `json:"seconds"`  // wall time of the whole section
	Error    string           `json:"error,omitempty"`
}

// retentionTool is one tool's repository in the retention benchmark. Runs
// are the operations, named by the op constants.
type retentionTool struct {
	*toolResult
	Snapshots  []run `json:"snapshots"`
	PackFiles  int   `json:"pack_files"`
	PackBytes  int64 `json:"pack_bytes"` // what cat and check --read-data read
	RepoBefore int64 `json:"repo_before_forget"`
	RepoAfter  int64 `json:"repo_after_prune"`
	RepoFinal  int64 `json:"repo_after_prune_all"`
	Left       int   `json:"snapshots_left"`
	// bk's own summaries of each check and each prune, by op.
	Checks map[string]*checkSummary `json:"checks,omitempty"`
	Prunes map[string]*pruneReport  `json:"prunes,omitempty"`
	ops    map[string][]string
	count  func(out []byte) (int, error) // the number of snapshots in the output of ops[opList]
}

// The operations timed on each repository, in the order they run. Those
// marked "bk only" are run on bk's repository alone.
const (
	opCheck        = "check"
	opCat          = "cat packs, cold"
	opReadData     = "check --read-data, cold"
	opCatWarm      = "cat packs, warm"               // bk only
	opReadDataWarm = "check --read-data, warm"       // bk only
	opForgetDry    = "forget --dry-run"              // the policy, nothing changed
	opPruneIdle    = "prune, nothing to reclaim"     // before forget: every day still needed
	opForget       = "forget"                        // the policy applied
	opPrune        = "prune"                         // reclaims what forget freed
	opPruneIdle2   = "prune, nothing to reclaim (2)" // after prune
	opPruneAll     = "prune, repack all"             // repack every partly used pack
	opCheckAfter   = "check after prune"
	opList         = "list" // untimed: count the snapshots left
)

// checkSummary is the part of `bk check --json` the benchmark reads.
type checkSummary struct {
	Snapshots    int     `json:"snapshots"`
	Packs        int     `json:"packs"`
	PacksRead    int     `json:"packs_read"`
	BlobsChecked int64   `json:"blobs_checked"`
	BytesRead    int64   `json:"bytes_read"`
	Seconds      float64 `json:"duration_seconds"`
	Problems     []any   `json:"problems"`
}

// pruneReport is the part of `bk prune --json` the benchmark reads.
type pruneReport struct {
	Prune struct {
		Packs        int   `json:"packs"`
		KeepPacks    int   `json:"keep_packs"`
		Delete       []any `json:"delete"`
		Repack       []any `json:"repack"`
		Orphans      []any `json:"orphans"`
		DeleteBytes  int64 `json:"delete_bytes"`
		RepackBytes  int64 `json:"repack_bytes"`
		CopyBytes    int64 `json:"copy_bytes"`
		ReclaimBytes int64 `json:"reclaim_bytes"`
	} `json:"prune"`
	Seconds float64 `json:"duration_seconds"`
}

// retentionDay is the snapshot time of day n (from 1): noon UTC of
// consecutive days, so that --keep-daily sees one snapshot a day.
func retentionDay(n int) time.Time {
	return time.Date(2026, time.October, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, n-1)
}

// newRetentionTool makes t's tool for the retention benchmark: its own
// repository, TZ=UTC (forget's days are local days), snapshot times one day
// apart, and the commands of each operation.
func newRetentionTool(t *tool, work, level string, keep int) *retentionTool {
	k := fmt.Sprint(keep)
	var x *tool
	var ops map[string][]string
	var count func([]byte) (int, error)
	switch t.Name {
	case "bk":
		x = newBKAt(t.bin, work, level, "repo-bk-retention")
		r := x.repo
		snap := x.snapArgs
		x.snapArgs = func(n int) []string {
			return append(snap(n), "--time", retentionDay(n).Format(time.RFC3339))
		}
		ops = map[string][]string{
			opCheck:        {"check", "--repo", r, "--json"},
			opReadData:     {"check", "--repo", r, "--read-data", "--json"},
			opReadDataWarm: {"check", "--repo", r, "--read-data", "--json"},
			opForgetDry:    {"forget", "--repo", r, "--keep-daily", k, "--dry-run", "--json"},
			opPruneIdle:    {"prune", "--repo", r, "--json"},
			opForget:       {"forget", "--repo", r, "--keep-daily", k, "--json"},
			opPrune:        {"prune", "--repo", r, "--json"},
			opPruneAll:     {"prune", "--repo", r, "--max-unused", "0%", "--json"},
			opList:         {"snapshots", "--repo", r, "--json"},
		}
		count = func(out []byte) (int, error) {
			var v []json.RawMessage
			err := json.Unmarshal(out, &v)
			return len(v), err
		}
	case "restic":
		x = newResticAt(t.bin, work, "repo-restic-retention")
		r := x.repo
		snap := x.snapArgs
		x.snapArgs = func(n int) []string {
			return append(snap(n), "--time", retentionDay(n).Format(time.DateTime))
		}
		ops = map[string][]string{
			opCheck:     {"-r", r, "check"},
			opReadData:  {"-r", r, "check", "--read-data"},
			opForgetDry: {"-r", r, "forget", "--keep-daily", k, "--dry-run"},
			opPruneIdle: {"-r", r, "prune"},
			opForget:    {"-r", r, "forget", "--keep-daily", k},
			opPrune:     {"-r", r, "prune"},
			opPruneAll:  {"-r", r, "prune", "--max-unused", "0"},
			opList:      {"-r", r, "snapshots", "--json"},
		}
		count = func(out []byte) (int, error) {
			var v []json.RawMessage
			err := json.Unmarshal(out, &v)
			return len(v), err
		}
	case "borg":
		x = newBorgAt(t.bin, work, level, "repo-borg-retention")
		r := x.repo
		snap := x.snapArgs
		x.snapArgs = func(n int) []string {
			// borg create [options] REPO::ARCHIVE -: the timestamp goes
			// before the two positional arguments.
			a := snap(n)
			return append(a[:len(a)-2:len(a)-2], "--timestamp", retentionDay(n).Format("2006-01-02T15:04:05"), a[len(a)-2], a[len(a)-1])
		}
		ops = map[string][]string{
			opCheck:     {"check", "--archives-only", r},
			opReadData:  {"check", "--verify-data", r},
			opForgetDry: {"prune", "--keep-daily", k, "--dry-run", r},
			opPruneIdle: {"compact", r},
			opForget:    {"prune", "--keep-daily", k, r},
			opPrune:     {"compact", r},
			opPruneAll:  {"compact", "--threshold", "0", r},
			opList:      {"list", "--json", r},
		}
		count = func(out []byte) (int, error) {
			var v struct {
				Archives []json.RawMessage `json:"archives"`
			}
			err := json.Unmarshal(out, &v)
			return len(v.Archives), err
		}
	default:
		return nil
	}
	x.Version = t.Version
	x.env = append(x.env, "TZ=UTC")
	ops[opPruneIdle2] = ops[opPruneIdle]
	ops[opCheckAfter] = ops[opCheck]
	return &retentionTool{toolResult: &toolResult{tool: x}, ops: ops, count: count}
}

// benchRetention runs the retention benchmark with the tools present.
func benchRetention(ctx context.Context, o options, work, orig string, tools []*tool, progress io.Writer) *retentionResult {
	start := time.Now()
	res := &retentionResult{Size: o.retentionSize, Days: o.retentionDays, Keep: o.retentionKeep, Fraction: o.retentionEdits}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	for _, t := range tools {
		if rt := newRetentionTool(t, work, o.level, o.retentionKeep); rt != nil {
			res.Tools = append(res.Tools, rt)
		}
	}
	if err := res.run(ctx, o, work, orig, progress); err != nil {
		res.Error = err.Error()
	}
	return res
}

// bk returns bk's repository, or nil.
func (r *retentionResult) bk() *retentionTool {
	if r == nil {
		return nil
	}
	for _, t := range r.Tools {
		if t.Name == "bk" {
			return t
		}
	}
	return nil
}

// run builds the repositories day by day, then measures each. A failure of
// bk is returned; another tool's is kept in its Error.
func (r *retentionResult) run(ctx context.Context, o options, work, orig string, progress io.Writer) error {
	for _, t := range r.Tools {
		if err := t.initRepo(ctx); err != nil {
			t.Error = err.Error()
		}
	}
	file := func(n int) string { return filepath.Join(work, fmt.Sprintf("retention%d.sql", n)) }
	first := orig
	if o.retentionSize == o.size && orig != "" {
		r.Reused = true
		fi, err := os.Stat(orig)
		if err != nil {
			return err
		}
		r.Size = fi.Size()
	} else {
		first = file(1)
		fmt.Fprintf(progress, "bench: retention: generating day 1 (%s)\n", formatSize(r.Size))
		f, err := newAsyncFile(first)
		if err != nil {
			return err
		}
		st, err := gen.Generate(f, nil, gen.Config{Size: r.Size, Seed: o.seed, EditFraction: -1})
		if err = errors.Join(err, f.Close()); err != nil {
			return fmt.Errorf("retention day 1: %w", err)
		}
		r.Size = st.OrigBytes
	}
	prev, last := "", first
	for n := 1; n <= r.Days; n++ {
		cur := first
		if n > 1 {
			cur = file(n)
			fmt.Fprintf(progress, "bench: retention: day %d of %d\n", n, r.Days)
			if _, err := editFile(prev, cur, gen.EditConfig{Seed: o.seed<<24 + 0x5e00 + uint64(n), Fraction: r.Fraction}); err != nil {
				return fmt.Errorf("retention day %d: %w", n, err)
			}
			if prev != orig && !o.keep {
				if err := os.Remove(prev); err != nil {
					return err
				}
			}
		}
		fi, err := os.Stat(cur)
		if err != nil {
			return err
		}
		r.Streams += fi.Size()
		for _, t := range r.Tools {
			if t.Error != "" {
				continue
			}
			x, err := t.snapshot(ctx, fmt.Sprintf("day %d", n), n, cur)
			if err != nil {
				t.Error = fmt.Sprintf("day %d: %v", n, err)
				continue
			}
			t.Snapshots = append(t.Snapshots, x)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		prev, last = cur, cur
	}

	r.Cold = true
	for _, t := range r.Tools {
		if t.Error != "" {
			continue
		}
		fmt.Fprintf(progress, "bench: retention: %s check, forget and prune\n", t.Name)
		if err := r.measure(ctx, t); err != nil {
			t.Error = err.Error()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	r.Cold = r.ColdErr == ""
	bk := r.bk()
	if bk == nil {
		return nil
	}
	if bk.Error != "" {
		return errors.New(bk.Error)
	}
	fmt.Fprintf(progress, "bench: retention: verify bk's restore of day %d after prune\n", r.Days)
	if err := bk.verifyStream(ctx, bk.restArgs, last); err != nil {
		return err
	}
	r.Verified = true
	return nil
}

// measure times the operations on t's repository, in order.
func (r *retentionResult) measure(ctx context.Context, t *retentionTool) error {
	isBK := t.Name == "bk"
	t.Checks, t.Prunes = map[string]*checkSummary{}, map[string]*pruneReport{}
	op := func(name string) error {
		var out bytes.Buffer
		x, err := t.exec(ctx, name, t.ops[name], "", &out)
		if err != nil {
			return err
		}
		t.Runs = append(t.Runs, x)
		if !isBK {
			return nil
		}
		var v any
		switch t.ops[name][0] {
		case "check":
			c := new(checkSummary)
			t.Checks[name], v = c, c
		case "prune":
			p := new(pruneReport)
			t.Prunes[name], v = p, p
		default:
			return nil
		}
		if err := json.Unmarshal(out.Bytes(), v); err != nil {
			return fmt.Errorf("bk %s --json: %w", name, err)
		}
		return nil
	}
	cold := func() {
		files, err := regularFiles(t.repo)
		if err == nil {
			err = evict(files)
		}
		if err != nil && r.ColdErr == "" {
			r.ColdErr = err.Error()
		}
	}

	packs, err := regularFiles(filepath.Join(t.repo, "data"))
	if err != nil {
		return err
	}
	t.PackFiles = len(packs)
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		t.PackBytes += fi.Size()
	}
	if t.RepoBefore, err = dirSize(t.repo); err != nil {
		return err
	}
	if err := op(opCheck); err != nil {
		return err
	}
	cold()
	x, err := catFiles(ctx, opCat, packs, t.PackBytes)
	if err != nil {
		return err
	}
	t.Runs = append(t.Runs, x)
	cold()
	if err := op(opReadData); err != nil {
		return err
	}
	if isBK {
		// Warm: the packs are in the page cache after a first cat.
		if _, err := catFiles(ctx, opCatWarm, packs, t.PackBytes); err != nil {
			return err
		}
		x, err := catFiles(ctx, opCatWarm, packs, t.PackBytes)
		if err != nil {
			return err
		}
		t.Runs = append(t.Runs, x)
		if err := op(opReadDataWarm); err != nil {
			return err
		}
	}
	for _, name := range []string{opForgetDry, opPruneIdle, opForget, opPrune} {
		if err := op(name); err != nil {
			return err
		}
	}
	if t.RepoAfter, err = dirSize(t.repo); err != nil {
		return err
	}
	for _, name := range []string{opPruneIdle2, opPruneAll, opCheckAfter} {
		if err := op(name); err != nil {
			return err
		}
	}
	if t.RepoFinal, err = dirSize(t.repo); err != nil {
		return err
	}
	var list bytes.Buffer
	if _, err := t.exec(ctx, opList, t.ops[opList], "", &list); err != nil {
		return err
	}
	if t.Left, err = t.count(list.Bytes()); err != nil {
		return fmt.Errorf("%s: count the snapshots left: %w", t.Name, err)
	}
	if want := r.Keep; t.Left != want {
		return fmt.Errorf("%s kept %d of %d daily snapshots after forget --keep-daily %d", t.Name, t.Left, r.Days, want)
	}
	return nil
}

// regularFiles lists the regular files under dir.
func regularFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return files, nil
}

// catFiles times cat reading the files (size bytes in all) into /dev/null,
// a few hundred files per invocation.
func catFiles(ctx context.Context, name string, files []string, size int64) (run, error) {
	x := run{Name: name, StreamBytes: size}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return x, err
	}
	defer devnull.Close()
	for len(files) > 0 {
		batch := files[:min(len(files), 500)]
		files = files[len(batch):]
		cmd := exec.CommandContext(ctx, "cat", batch...)
		cmd.Stdout = devnull
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		resetPeakRSS()
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return x, fmt.Errorf("cat: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		x.WallSec += time.Since(start).Seconds()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			x.MaxRSS = max(x.MaxRSS, ru.Maxrss*1024)
			x.CPUSec += time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	x.MBps = mbps(size, x.WallSec)
	return x, nil
}

// bkRuns returns the runs of the tool itself: the snapshots and the
// operations, not cat.
func (t *retentionTool) bkRuns() []run {
	runs := append([]run{}, t.Snapshots...)
	for _, x := range t.Runs {
		if x.Name != opCat && x.Name != opCatWarm {
			runs = append(runs, x)
		}
	}
	return runs
}

// readMBps returns the pack bytes per wall second of the tool's run name.
func (t *retentionTool) readMBps(name string) float64 {
	x := t.find(name)
	if x.Name == "" {
		return 0
	}
	return mbps(t.PackBytes, x.WallSec)
}

// retentionLabels are the rows of the side-by-side table: bk's command, and
// restic's and borg's where the names differ.
func retentionLabel(op string, keep int) string {
	switch op {
	case opCheck:
		return "check (structural; borg: check --archives-only)"
	case opReadData:
		return "check --read-data, cold (borg: --verify-data)"
	case opCat:
		return "cat of the same pack files, cold"
	case opForgetDry:
		return fmt.Sprintf("forget --keep-daily %d --dry-run (borg: prune)", keep)
	case opPruneIdle:
		return "prune with nothing to reclaim (borg: compact)"
	case opForget:
		return fmt.Sprintf("forget --keep-daily %d (borg: prune)", keep)
	case opPrune:
		return "prune after forget (borg: compact)"
	case opPruneIdle2:
		return "prune again, nothing to reclaim"
	case opPruneAll:
		return "prune --max-unused 0% (restic: 0; borg: compact --threshold 0)"
	case opCheckAfter:
		return "check after prune"
	}
	return op
}

func printRetention(w io.Writer, r *retentionResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\n== Retention: %d daily snapshots of a %s dump, each day the one before with %.2f%% of rows edited\n",
		r.Days, formatSize(r.Size), 100*r.Fraction)
	if r.Reused {
		fmt.Fprintf(w, "day 1 is the run's dump")
	} else {
		fmt.Fprintf(w, "day 1 is a dump of -retention-size generated for this section, not the run's dump: 30 days of a 1 GiB dump\n"+
			"take about 10 minutes with bk, restic and borg on 2 cores, so the default is 256 MiB (-retention-size 1GiB for the full size)")
	}
	fmt.Fprintf(w, "; %s of streams in all, snapshot times %s to %s (TZ=UTC); the section took %.0f s\n", formatSize(r.Streams),
		retentionDay(1).Format("2006-01-02 15:04"), retentionDay(r.Days).Format("2006-01-02 15:04"), r.Seconds)
	tw := newTable(w)
	fmt.Fprintln(tw, "tool\tsnapshots\twall s\tMB/s\tCPU s\tpeak RSS\trepository\tpack files")
	for _, t := range r.Tools {
		var wall, cpu float64
		var rss int64
		for _, x := range t.Snapshots {
			wall, cpu, rss = wall+x.WallSec, cpu+x.CPUSec, max(rss, x.MaxRSS)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.1f\t%s\t%s\t%d, %s\n", t.Name, len(t.Snapshots), wall, mbps(r.Streams, wall), cpu,
			formatSize(rss), formatSize(t.RepoBefore), t.PackFiles, formatSize(t.PackBytes))
	}
	tw.Flush()
	for _, t := range r.Tools {
		if t.Error != "" {
			fmt.Fprintf(w, "%s FAILED: %s\n", t.Name, firstLine(t.Error))
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "retention FAILED: %s\n", firstLine(r.Error))
	}

	var ok []*retentionTool
	for _, t := range r.Tools {
		if t.Error == "" && len(t.Runs) > 0 {
			ok = append(ok, t)
		}
	}
	if len(ok) == 0 {
		return
	}
	bk := ok[0]
	if bk.Name != "bk" {
		bk = nil
	}
	cache := "cold: page cache dropped (fdatasync + posix_fadvise DONTNEED on every file of the repository) before each"
	if !r.Cold {
		cache = "WARM: the page cache could not be dropped (" + r.ColdErr + "), so both read from memory"
	}
	fmt.Fprintf(w, "\nwall seconds; MB/s = pack file bytes / wall; %s; other/bk = other's wall / bk's (higher: bk faster)\n", cache)
	tw = newTable(w)
	head := "operation"
	for _, t := range ok {
		head += "\t" + t.Name
	}
	if bk != nil {
		for _, t := range ok[1:] {
			head += "\t" + t.Name + "/bk"
		}
	}
	fmt.Fprintln(tw, head)
	for _, name := range []string{opCheck, opReadData, "streams/s", opCat, "read/cat", opForgetDry, opPruneIdle, opForget, opPrune, opPruneIdle2, opPruneAll, opCheckAfter,
		"before", "after", "reclaimed", "final", "left"} {
		label := retentionLabel(name, r.Keep)
		var cells []string
		var walls []float64
		for _, t := range ok {
			x := t.find(name)
			cell, wall := "-", 0.0
			switch name {
			case "read/cat":
				label = "check --read-data / cat (MB/s of pack files)"
				cell = percent(t.readMBps(opReadData), t.readMBps(opCat))
			case "streams/s":
				// Every tool verifies every snapshot's data; with deltas
				// bk's packs are far smaller than the streams they hold.
				label = "check --read-data, MB/s of the snapshots' streams"
				if x := t.find(opReadData); x.Name != "" {
					cell = fmt.Sprintf("%.0f MB/s", mbps(r.Streams, x.WallSec))
				}
			case "before":
				label, cell = fmt.Sprintf("repository, %d days", r.Days), formatSize(t.RepoBefore)
			case "after":
				label, cell = "repository after prune", formatSize(t.RepoAfter)
			case "reclaimed":
				label, cell = "reclaimed by prune", fmt.Sprintf("%s (%s)", formatSize(t.RepoBefore-t.RepoAfter), share(t.RepoBefore-t.RepoAfter, t.RepoBefore))
			case "final":
				label, cell = "repository after prune --max-unused 0%", formatSize(t.RepoFinal)
			case "left":
				label, cell = "snapshots left", fmt.Sprint(t.Left)
			default:
				if x.Name != "" {
					wall = x.WallSec
					cell = fmt.Sprintf("%.2f s", wall)
					if name == opReadData || name == opCat {
						cell += fmt.Sprintf(", %.0f MB/s", mbps(t.PackBytes, wall))
					}
				}
			}
			cells = append(cells, cell)
			walls = append(walls, wall)
		}
		if bk != nil {
			for i := range ok[1:] {
				c := ratio(walls[i+1], walls[0])
				if name == opCat {
					c = "-" // not the tools' work: each cat reads its own repository
				}
				cells = append(cells, c)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, strings.Join(cells, "\t"))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "tool\trun\twall s\tCPU s\tpeak RSS\trepo change\tcommand or notes")
	for _, t := range ok {
		for _, x := range t.Runs {
			note := strings.Join(t.ops[x.Name], " ")
			if note == "" {
				note = fmt.Sprintf("cat, %s in %d files", formatSize(t.PackBytes), t.PackFiles)
			} else {
				note = t.Name + " " + strings.ReplaceAll(note, t.repo, "REPO")
			}
			if p := t.Prunes[x.Name]; p != nil {
				note += fmt.Sprintf(": %s", p.summary())
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%s\t%s\t%s\n", t.Name, x.Name, x.WallSec, x.CPUSec, formatSize(x.MaxRSS), formatSize(x.Added), note)
		}
	}
	tw.Flush()
	if bk == nil {
		return
	}
	if c := bk.Checks[opReadData]; c != nil {
		x := bk.find(opReadData)
		fmt.Fprintf(w, "bk check --read-data read %d packs, %s (%d blobs) in %.2f s by its own clock, %.0f MB/s; %.2f s of the %.2f s wall are outside it\n",
			c.PacksRead, formatSize(c.BytesRead), c.BlobsChecked, c.Seconds, mbps(c.BytesRead, c.Seconds), x.WallSec-c.Seconds, x.WallSec)
		fmt.Fprintf(w, "  (opening the repository: key derivation and index; the structural check took %.2f s wall, %.2f s by its own clock)\n",
			bk.find(opCheck).WallSec, bk.Checks[opCheck].seconds())
	}
	if a, b := bk.find(opReadDataWarm), bk.find(opCatWarm); a.Name != "" && b.Name != "" {
		fmt.Fprintf(w, "warm page cache: bk check --read-data %.0f MB/s (%.2f CPU s in %.2f s wall: %.1f cores busy), cat %.0f MB/s: %s\n",
			mbps(bk.PackBytes, a.WallSec), a.CPUSec, a.WallSec, a.CPUSec/max(a.WallSec, 1e-9), mbps(bk.PackBytes, b.WallSec),
			percent(mbps(bk.PackBytes, a.WallSec), mbps(bk.PackBytes, b.WallSec)))
	}
	var parts []string
	for _, name := range []string{opPruneIdle, opPrune, opPruneIdle2, opPruneAll} {
		x := bk.find(name)
		if p := bk.Prunes[name]; p != nil && x.Name != "" {
			parts = append(parts, fmt.Sprintf("%s: %.2f s, copied %s", name, x.WallSec, formatSize(p.Prune.CopyBytes)))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "bk prune time against the bytes it repacks (copies): %s\n", strings.Join(parts, "; "))
	}
	if r.Verified {
		fmt.Fprintf(w, "bk restored day %d byte for byte after forget and prune (SHA-256 checked, untimed)\n", r.Days)
	}
}

// seconds is bk's own duration of the check, or 0 if unknown.
func (c *checkSummary) seconds() float64 {
	if c == nil {
		return 0
	}
	return c.Seconds
}

// summary says what one bk prune did.
func (p *pruneReport) summary() string {
	q := p.Prune
	return fmt.Sprintf("%d packs: deleted %d (%s), repacked %d (%s, %s copied), %d orphans; reclaimed %s",
		q.Packs, len(q.Delete), formatSize(q.DeleteBytes), len(q.Repack), formatSize(q.RepackBytes), formatSize(q.CopyBytes),
		len(q.Orphans), formatSize(q.ReclaimBytes))
}

// evaluateRetention adds the targets of issue 5's speed section.
func evaluateRetention(r *report) {
	rr := r.Retention
	if rr == nil {
		return
	}
	bk := rr.bk()
	if bk != nil && (bk.Error != "" || len(bk.Runs) == 0) {
		bk = nil
	}
	mode := "cold"
	if !rr.Cold {
		mode = "warm"
	}
	t := target{Name: fmt.Sprintf("bk check --read-data, %d days (%s)", rr.Days, mode), Want: ">= 70% of cat of the packs", Missing: true}
	if bk != nil {
		a, b := bk.readMBps(opReadData), bk.readMBps(opCat)
		if a > 0 && b > 0 {
			t.Got, t.OK, t.Missing = fmt.Sprintf("%.0f%% (%.0f / %.0f MB/s)", 100*a/b, a, b), a >= 0.7*b, false
		}
	}
	r.Targets = append(r.Targets, t)
	for _, x := range []struct{ op, name string }{
		{opCheck, fmt.Sprintf("bk check (structural), %d days", rr.Days)},
		{opForgetDry, fmt.Sprintf("bk forget --keep-daily %d --dry-run, %d days", rr.Keep, rr.Days)},
	} {
		t := target{Name: x.name, Want: "< 2 s", Missing: true}
		if bk != nil {
			if y := bk.find(x.op); y.Name != "" {
				t.Got, t.OK, t.Missing = fmt.Sprintf("%.2f s", y.WallSec), y.WallSec < 2, false
			}
		}
		r.Targets = append(r.Targets, t)
	}
	// Prune's time should follow what it repacks: with nothing to reclaim
	// it costs about a structural check, on the full repository as on the
	// pruned one.
	t = target{Name: "bk prune with nothing to reclaim", Want: fmt.Sprintf("< 2 s at %d days, and <= 1.5x + 0.25 s of the time at %d", rr.Days, rr.Keep), Missing: true}
	if bk != nil {
		a, b := bk.find(opPruneIdle), bk.find(opPruneIdle2)
		if a.Name != "" && b.Name != "" {
			t.Got = fmt.Sprintf("%.2f s at %d days (%s), %.2f s at %d (%s)", a.WallSec, rr.Days, formatSize(bk.RepoBefore),
				b.WallSec, rr.Keep, formatSize(bk.RepoAfter))
			t.OK, t.Missing = a.WallSec < 2 && a.WallSec <= 1.5*b.WallSec+0.25, false
		}
	}
	r.Targets = append(r.Targets, t)
	t = target{Name: "bk peak RSS, retention runs", Want: "< 300 MiB", Missing: true}
	if bk != nil {
		var rss int64
		worst := ""
		for _, x := range bk.bkRuns() {
			if x.MaxRSS > rss {
				rss, worst = x.MaxRSS, x.Name
			}
		}
		t.Got, t.OK, t.Missing = fmt.Sprintf("%.0f MiB (%s)", float64(rss)/(1<<20), worst), rss < 300<<20, false
	}
	r.Targets = append(r.Targets, t)
}
