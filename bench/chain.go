package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bk-backup/bk/bench/gen"
	"github.com/bk-backup/bk/repo"
)

// chainResult is the restore-at-depth benchmark: successive nights, each a
// small edit of the one before, snapshotted into one repository until the
// newest snapshot's chunks sit at the bottom of delta chains of the maximum
// depth; then restores of night 1 and of the newest are timed.
type chainResult struct {
	Size     int64   `json:"size"`
	Fraction float64 `json:"edit_fraction"`
	Nights   []night `json:"nights"`
	Runs     []run   `json:"snapshots"`
	Restores []run   `json:"restores"` // alternately night 1 and the newest
	Verified bool    `json:"verified"`
	// Depths counts the newest snapshot's chunks by the depth of their
	// delta chain (0: stored whole), read from the repository index.
	Depths   []int64 `json:"newest_chunk_depths,omitempty"`
	MaxDepth int     `json:"max_depth_config,omitempty"`
	DepthErr string  `json:"depth_error,omitempty"`
	Error    string  `json:"error,omitempty"`
	tool     *tool
	firstID  string
}

const (
	restoreFirst  = "restore night 1"
	restoreNewest = "restore newest"
)

// benchChain runs the chain benchmark with the bk binary of t.
func benchChain(ctx context.Context, o options, work string, bk *tool, progress io.Writer) *chainResult {
	t := newBKAt(bk.bin, work, o.level, "repo-bk-chain")
	t.Version = bk.Version
	res := &chainResult{Size: o.chainSize, Fraction: o.chainEdits, tool: t}
	if err := res.run(ctx, o, work, progress); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (res *chainResult) run(ctx context.Context, o options, work string, progress io.Writer) error {
	t := res.tool
	if err := t.initRepo(ctx); err != nil {
		return err
	}
	file := func(n int) string { return filepath.Join(work, fmt.Sprintf("chain%d.sql", n)) }
	fmt.Fprintf(progress, "bench: chain: generating night 1 (%s)\n", formatSize(o.chainSize))
	f, err := newAsyncFile(file(1))
	if err != nil {
		return err
	}
	st, err := gen.Generate(f, nil, gen.Config{Size: o.chainSize, Seed: o.seed, EditFraction: -1})
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("chain night 1: %w", err)
	}
	res.Nights = append(res.Nights, night{N: 1, Bytes: st.OrigBytes, file: file(1)})
	for n := 1; n <= o.chainNights; n++ {
		if n > 1 {
			prev := res.Nights[n-2]
			fmt.Fprintf(progress, "bench: chain: night %d\n", n)
			st, err := editFile(prev.file, file(n), gen.EditConfig{Seed: o.seed<<16 + 0xc0 + uint64(n), Fraction: o.chainEdits})
			if err != nil {
				return fmt.Errorf("chain night %d: %w", n, err)
			}
			res.Nights = append(res.Nights, night{N: n, Bytes: st.OutBytes, file: file(n), Fraction: o.chainEdits, Edit: &st})
			if !o.keep {
				if err := os.Remove(prev.file); err != nil {
					return err
				}
			}
		}
		r, err := t.snapshot(ctx, nightRun(n), n, file(n))
		if err != nil {
			return err
		}
		res.Runs = append(res.Runs, r)
		if n == 1 {
			res.firstID = r.Reported.ID
		} else if r.Reported.AddedDeltas == 0 {
			return fmt.Errorf("chain night %d added no deltas (%d blobs): the chain is broken", n, r.Reported.AddedBlobs)
		}
	}
	first, newest := res.Nights[0], res.Nights[len(res.Nights)-1]
	firstArgs := []string{"restore", res.firstID, "--repo", t.repo, "--stdout"}
	for i := range o.chainRounds {
		fmt.Fprintf(progress, "bench: chain: restores, round %d of %d\n", i+1, o.chainRounds)
		for _, x := range []struct {
			name string
			args []string
			size int64
		}{{restoreFirst, firstArgs, first.Bytes}, {restoreNewest, t.restArgs, newest.Bytes}} {
			r, err := t.restore(ctx, x.name, x.args, x.size)
			if err != nil {
				return err
			}
			res.Restores = append(res.Restores, r)
		}
	}
	fmt.Fprintf(progress, "bench: chain: verify the newest restore\n")
	if err := t.verifyStream(ctx, t.restArgs, newest.file); err != nil {
		return err
	}
	res.Verified = true
	return nil
}

// median returns the run of median wall time among the runs with the given
// name (the lower middle one of an even count), and how many there are.
func median(runs []run, name string) (run, int) {
	var xs []run
	for _, r := range runs {
		if r.Name == name {
			xs = append(xs, r)
		}
	}
	if len(xs) == 0 {
		return run{}, 0
	}
	slices.SortFunc(xs, func(a, b run) int {
		switch {
		case a.WallSec < b.WallSec:
			return -1
		case a.WallSec > b.WallSec:
			return 1
		}
		return 0
	})
	return xs[(len(xs)-1)/2], len(xs)
}

// chainDepths fills res.Depths from the chain repository: the chain depth of
// every chunk of the newest snapshot.
func (res *chainResult) chainDepths(ctx context.Context, rp *repo.Repository) error {
	snaps, err := rp.Snapshots(ctx, repo.Filter{Name: "bench"})
	if err != nil {
		return err
	}
	if len(snaps) == 0 {
		return errors.New("no snapshot")
	}
	newest := snaps[len(snaps)-1]
	for _, s := range snaps {
		if s.Time.After(newest.Time) {
			newest = s
		}
	}
	chunks, err := streamChunks(ctx, rp, newest.Tree)
	if err != nil {
		return err
	}
	depth := newDepths(rp)
	for _, c := range chunks {
		d, err := depth.of(c.ID)
		if err != nil {
			return err
		}
		for len(res.Depths) <= d {
			res.Depths = append(res.Depths, 0)
		}
		res.Depths[d]++
	}
	res.MaxDepth = rp.Config().Delta.MaxDepth
	return nil
}

func printChain(w io.Writer, res *chainResult) {
	if res == nil {
		return
	}
	fmt.Fprintf(w, "\n== Restore at maximum chain depth: %d nights of a %s dump (smaller than the main dump to save time; -chain-size),\n",
		len(res.Nights), formatSize(res.Size))
	fmt.Fprintf(w, "each night the one before with %.2f%% of rows edited, into one repository\n", 100*res.Fraction)
	tw := newTable(w)
	fmt.Fprintln(tw, "run\tstream\twall s\tMB/s\tCPU s\tpeak RSS\tstored\tnotes")
	for i, x := range res.Runs {
		note := ""
		if s := x.Reported; s != nil {
			note = fmt.Sprintf("added %d blobs, %d as deltas", s.AddedBlobs, s.AddedDeltas)
		}
		if i < len(res.Nights) && res.Nights[i].Edit != nil {
			note += fmt.Sprintf("; %s of the ideal %s", ratio(float64(x.Added), float64(res.Nights[i].Edit.IdealBytes)),
				formatSize(res.Nights[i].Edit.IdealBytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\n", x.Name, formatSize(x.StreamBytes), x.WallSec, x.MBps, x.CPUSec,
			formatSize(x.MaxRSS), formatSize(x.Added), note)
	}
	for _, name := range []string{restoreFirst, restoreNewest} {
		x, n := median(res.Restores, name)
		if n == 0 {
			continue
		}
		var all []string
		for _, y := range res.Restores {
			if y.Name == name {
				all = append(all, fmt.Sprintf("%.0f", y.MBps))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t-\tmedian of %d runs (MB/s: %s)\n", x.Name, formatSize(x.StreamBytes),
			x.WallSec, x.MBps, x.CPUSec, formatSize(x.MaxRSS), n, strings.Join(all, ", "))
	}
	tw.Flush()
	if res.Error != "" {
		fmt.Fprintf(w, "chain FAILED: %s\n", firstLine(res.Error))
	}
	switch {
	case res.DepthErr != "":
		fmt.Fprintf(w, "chain depths of the newest snapshot: not read: %s\n", res.DepthErr)
	case len(res.Depths) > 0:
		var total int64
		var parts []string
		for d, n := range res.Depths {
			total += n
			if n > 0 {
				parts = append(parts, fmt.Sprintf("depth %d: %d", d, n))
			}
		}
		fmt.Fprintf(w, "newest snapshot's %d chunks by delta chain depth (from the index; cap %d): %s\n", total, res.MaxDepth, strings.Join(parts, ", "))
	}
	a, _ := median(res.Restores, restoreFirst)
	b, _ := median(res.Restores, restoreNewest)
	if a.MBps > 0 && b.MBps > 0 {
		fmt.Fprintf(w, "restore of the newest / restore of night 1: %s (%.0f / %.0f MB/s)\n", percent(b.MBps, a.MBps), b.MBps, a.MBps)
	}
	if res.Verified {
		fmt.Fprintf(w, "bk restored the newest night byte for byte (SHA-256 checked, untimed)\n")
	}
}

// evaluateChain adds the restore-at-depth target.
func evaluateChain(r *report) {
	if r.Chain == nil {
		return
	}
	a, _ := median(r.Chain.Restores, restoreFirst)
	b, _ := median(r.Chain.Restores, restoreNewest)
	depth := len(r.Chain.Nights) - 1
	if len(r.Chain.Depths) > 0 {
		depth = len(r.Chain.Depths) - 1
	}
	t := target{Name: fmt.Sprintf("bk restore at chain depth %d", depth), Want: ">= 50% of night 1's restore", Missing: true}
	if a.MBps > 0 && b.MBps > 0 {
		t.Got, t.OK, t.Missing = fmt.Sprintf("%.0f%% (%.0f / %.0f MB/s)", 100*b.MBps/a.MBps, b.MBps, a.MBps), b.MBps >= 0.5*a.MBps, false
	}
	r.Targets = append(r.Targets, t)
}
