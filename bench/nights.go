package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bk-backup/bk/bench/gen"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/pack"
)

// night is one stream of the nights benchmark.
type night struct {
	N     int    `json:"night"`
	Bytes int64  `json:"bytes"`
	file  string // path of the stream
	// Fraction of rows of the night before that this night edits (0 for
	// night 1), and what Edit did.
	Fraction float64        `json:"edit_fraction,omitempty"`
	Edit     *gen.EditStats `json:"edit,omitempty"`
}

// nightsResult is the nights benchmark: successive nights of one database
// snapshotted by each tool into one repository per tool, bk twice (with
// and without deltas).
type nightsResult struct {
	Nights []night       `json:"nights"`
	Tools  []*toolResult `json:"tools"`
	// Added splits what each night added to bk's repository (read in
	// this process after the runs).
	Added []nightAdded `json:"bk_added,omitempty"`
}

// nightRun names the snapshot of night n.
func nightRun(n int) string { return fmt.Sprintf("night %d", n) }

// noDelta is the name of bk on a repository made with `bk init --no-delta`.
const noDelta = "bk --no-delta"

// tool returns the named tool's result if it completed, or nil.
func (r *nightsResult) tool(name string) *toolResult {
	if r == nil {
		return nil
	}
	for _, t := range r.Tools {
		if t.Name == name && t.Error == "" {
			return t
		}
	}
	return nil
}

// makeNights writes the nights after night 1 (the file first): each is
// the night before with fractions[i] of its rows edited, seeded.
func makeNights(first, dir, prefix string, seed uint64, fractions []float64, progress io.Writer) ([]night, error) {
	fi, err := os.Stat(first)
	if err != nil {
		return nil, err
	}
	nights := []night{{N: 1, Bytes: fi.Size(), file: first}}
	for i, frac := range fractions {
		n := night{N: i + 2, Fraction: frac, file: filepath.Join(dir, fmt.Sprintf("%s%d.sql", prefix, i+2))}
		fmt.Fprintf(progress, "bench: generating night %d (%.2f%% of rows of night %d edited)\n", n.N, 100*frac, n.N-1)
		st, err := editFile(nights[i].file, n.file, gen.EditConfig{Seed: seed<<8 + uint64(n.N), Fraction: frac})
		if err != nil {
			return nights, fmt.Errorf("night %d: %w", n.N, err)
		}
		n.Bytes, n.Edit = st.OutBytes, &st
		nights = append(nights, n)
	}
	return nights, nil
}

// editFile writes to dst the dump src edited by gen.Edit.
func editFile(src, dst string, cfg gen.EditConfig) (gen.EditStats, error) {
	in, err := os.Open(src)
	if err != nil {
		return gen.EditStats{}, err
	}
	defer in.Close()
	out, err := newAsyncFile(dst)
	if err != nil {
		return gen.EditStats{}, err
	}
	st, err := gen.Edit(out, in, cfg)
	return st, errors.Join(err, out.Close())
}

// runNights snapshots every night, in order, into a fresh repository of t.
func runNights(ctx context.Context, t *tool, nights []night, progress io.Writer) *toolResult {
	res := &toolResult{tool: t}
	if err := t.initRepo(ctx); err != nil {
		res.Error = err.Error()
		return res
	}
	for _, n := range nights {
		fmt.Fprintf(progress, "bench: %s %s\n", t.Name, nightRun(n.N))
		r, err := t.snapshot(ctx, nightRun(n.N), n.N, n.file)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.Runs = append(res.Runs, r)
	}
	return res
}

// benchNights generates nights 2 and 3 from the dump and snapshots the three
// nights with bk, bk --no-delta, restic and borg (those of tools present).
func benchNights(ctx context.Context, o options, work, orig string, tools []*tool, progress io.Writer) (*nightsResult, error) {
	nights, err := makeNights(orig, work, "night", o.seed, []float64{o.night2Edits, o.night3Edits}, progress)
	if err != nil {
		return nil, err
	}
	res := &nightsResult{Nights: nights}
	var list []*tool
	for _, t := range tools {
		var add []*tool
		switch t.Name {
		case "bk":
			nd := newBKAt(t.bin, work, o.level, "repo-bk-nights-nodelta", "--no-delta")
			nd.Name = noDelta
			add = []*tool{newBKAt(t.bin, work, o.level, "repo-bk-nights"), nd}
		case "restic":
			add = []*tool{newResticAt(t.bin, work, "repo-restic-nights")}
		case "borg":
			add = []*tool{newBorgAt(t.bin, work, o.level, "repo-borg-nights")}
		}
		for _, x := range add {
			x.Version = t.Version
		}
		list = append(list, add...)
	}
	for _, t := range list {
		res.Tools = append(res.Tools, runNights(ctx, t, nights, progress))
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// stored returns the repository growth of night n and its share of night 1's.
func (r *toolResult) stored(n int) (int64, float64, bool) {
	first, x := r.find(nightRun(1)), r.find(nightRun(n))
	if first.Added <= 0 || x.Name == "" {
		return 0, 0, false
	}
	return x.Added, 100 * float64(x.Added) / float64(first.Added), true
}

func printNights(w io.Writer, r *nightsResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\n== Nights: one database on successive nights, one repository per tool\n")
	fmt.Fprintf(w, "night 1 is the dump; each later night is the night before with a share of its rows edited\n")
	fmt.Fprintf(w, "(changed, inserted after, deleted: a third each, spread over the file), as a database changes day by day\n")
	tw := newTable(w)
	fmt.Fprintln(tw, "night\tstream\tedited rows of the night before\tideal increment")
	for _, n := range r.Nights {
		if n.Edit == nil {
			fmt.Fprintf(tw, "%d\t%s\t-\t-\n", n.N, formatSize(n.Bytes))
			continue
		}
		e := n.Edit
		fmt.Fprintf(tw, "%d\t%s\t%.2f%%: %s changed, %s inserted, %s deleted\t%s (%s raw)\n", n.N, formatSize(n.Bytes),
			pct(e.Changed+e.Inserted+e.Deleted, e.Rows), withCommas(e.Changed), withCommas(e.Inserted), withCommas(e.Deleted),
			formatSize(e.IdealBytes), formatSize(e.EditBytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "tool\trun\twall s\tMB/s\tCPU s\tpeak RSS\tstored\tof night 1\tnotes")
	for _, t := range r.Tools {
		for i, x := range t.Runs {
			share, note := "-", ""
			if i > 0 {
				if _, p, ok := t.stored(i + 1); ok {
					share = fmt.Sprintf("%.2f%%", p)
				}
				if e := r.Nights[i].Edit; e != nil {
					note = fmt.Sprintf("%s of the ideal", ratio(float64(x.Added), float64(e.IdealBytes)))
				}
			}
			if s := x.Reported; s != nil {
				note = strings.TrimSpace(note + fmt.Sprintf("  added %d blobs, %d as deltas", s.AddedBlobs, s.AddedDeltas))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\n", t.Name, x.Name, x.WallSec, x.MBps, x.CPUSec,
				formatSize(x.MaxRSS), formatSize(x.Added), share, note)
		}
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t%s\n", t.Name, firstLine(t.Error))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "(ideal: zstd of the changed and inserted rows alone; a delta can beat it, as it copies a changed row's unchanged columns)")
	printAdded(w, r.Added)

	bk := r.tool("bk")
	if bk == nil {
		return
	}
	var others []*toolResult
	for _, name := range []string{"restic", "borg", noDelta} {
		if t := r.tool(name); t != nil {
			others = append(others, t)
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(w, "\nbk's stored bytes as a share of the others' (lower is better)\n")
		tw = newTable(w)
		head := "night"
		for _, o := range others {
			head += "\tbk/" + o.Name
		}
		fmt.Fprintln(tw, head)
		for _, n := range r.Nights {
			line := fmt.Sprint(n.N)
			for _, o := range others {
				line += "\t" + share(bk.find(nightRun(n.N)).Added, o.find(nightRun(n.N)).Added)
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}

	nd := r.tool(noDelta)
	if nd == nil {
		return
	}
	fmt.Fprintf(w, "\n== Delta throughput: bk snapshot MB/s with deltas and on a repository made with --no-delta (same nights)\n")
	tw = newTable(w)
	fmt.Fprintln(tw, "night\tbk MB/s\tCPU s\tbk --no-delta MB/s\tCPU s\tMB/s delta/no-delta\tCPU s delta/no-delta")
	for _, n := range r.Nights[1:] {
		a, b := bk.find(nightRun(n.N)), nd.find(nightRun(n.N))
		fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%.0f\t%.2f\t%s\t%s\n", n.N, a.MBps, a.CPUSec, b.MBps, b.CPUSec,
			percent(a.MBps, b.MBps), percent(a.CPUSec, b.CPUSec))
	}
	tw.Flush()
	fmt.Fprintln(w, "(one run each, warm page cache; CPU seconds are the steadier figure when other processes load the machine)")
}

// share formats a/b as a percentage with two significant digits below 10%,
// or "-" when either is unknown.
func share(a, b int64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	p := 100 * float64(a) / float64(b)
	switch {
	case p < 1:
		return fmt.Sprintf("%.2f%%", p)
	case p < 10:
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", p)
}

// percent formats a/b as a percentage, or "-" when either is unknown.
func percent(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

// evaluateNights adds the targets of the nights and delta throughput.
func evaluateNights(r *report) {
	nr := r.Nights
	if nr == nil {
		return
	}
	bk, nd := nr.tool("bk"), nr.tool(noDelta)
	for i, limit := range []float64{1, 5} {
		n := i + 2
		name := fmt.Sprintf("bk night %d stored", n)
		if n-1 < len(nr.Nights) {
			name = fmt.Sprintf("bk night %d (%.2f%% edited) stored", n, 100*nr.Nights[n-1].Fraction)
		}
		t := target{Name: name, Want: fmt.Sprintf("<= %.0f%% of night 1", limit), Missing: true}
		if bk != nil {
			if _, p, ok := bk.stored(n); ok {
				t.Got, t.OK, t.Missing = fmt.Sprintf("%.2f%%", p), p <= limit, false
			}
		}
		r.Targets = append(r.Targets, t)
	}
	for n := 2; n <= 3; n++ {
		t := target{Name: fmt.Sprintf("bk delta throughput, night %d", n), Want: ">= 70% of --no-delta", Missing: true}
		if bk != nil && nd != nil {
			a, b := bk.find(nightRun(n)).MBps, nd.find(nightRun(n)).MBps
			if a > 0 && b > 0 {
				t.Got, t.OK, t.Missing = fmt.Sprintf("%.0f%% (%.0f / %.0f MB/s)", 100*a/b, a, b), a >= 0.7*b, false
			}
		}
		r.Targets = append(r.Targets, t)
	}
}

// nightAdded is what one night added to bk's repository, by encoding, read
// from the repository: the chunks of the night that no earlier night has.
type nightAdded struct {
	Night      int   `json:"night"`
	Deltas     int   `json:"deltas"`
	DeltaBytes int64 `json:"delta_bytes"` // sealed bytes in packs
	Whole      int   `json:"whole"`
	WholeBytes int64 `json:"whole_bytes"`
	WholeRaw   int64 `json:"whole_raw_bytes"` // their plaintext size
	// AvgChunk is the night's average chunk size, to compare with.
	AvgChunk int64 `json:"avg_chunk"`
	// WholeAt are the stream offsets of the chunks stored whole, as
	// fractions of the stream.
	WholeAt []float64 `json:"whole_at"`
}

// nightsAdded fills r.Added from bk's nights repository.
func (r *nightsResult) nightsAdded(ctx context.Context, rp *repo.Repository) error {
	snaps, err := rp.Snapshots(ctx, repo.Filter{Name: "bench"})
	if err != nil {
		return err
	}
	seen := make(map[crypt.ID]bool)
	for k, s := range snaps {
		chunks, err := streamChunks(ctx, rp, s.Tree)
		if err != nil {
			return err
		}
		a := nightAdded{Night: k + 1}
		var off int64
		for _, c := range chunks {
			if !seen[c.ID] {
				seen[c.ID] = true
				loc, ok := rp.Index().Lookup(c.ID)
				if !ok {
					return fmt.Errorf("night %d: chunk %s is not in the index", k+1, c.ID.Short())
				}
				if loc.Entry.Enc == pack.DeltaZstd {
					a.Deltas++
					a.DeltaBytes += loc.Entry.Length
				} else {
					a.Whole++
					a.WholeBytes += loc.Entry.Length
					a.WholeRaw += loc.Entry.RawLength
					a.WholeAt = append(a.WholeAt, float64(off)/float64(max(s.Size, 1)))
				}
			}
			off += c.Size
		}
		a.AvgChunk = s.Size / int64(max(len(chunks), 1))
		r.Added = append(r.Added, a)
	}
	return nil
}

func printAdded(w io.Writer, added []nightAdded) {
	for _, a := range added {
		if a.Night == 1 {
			continue
		}
		var at []string
		for i, f := range a.WholeAt {
			if i == 8 {
				at = append(at, "...")
				break
			}
			at = append(at, fmt.Sprintf("%.0f%%", 100*f))
		}
		fmt.Fprintf(w, "bk night %d added %d deltas (%s, avg %s) and %d chunks stored whole (%s", a.Night, a.Deltas,
			formatSize(a.DeltaBytes), formatSize(a.DeltaBytes/int64(max(a.Deltas, 1))), a.Whole, formatSize(a.WholeBytes))
		if a.Whole > 0 {
			fmt.Fprintf(w, "; avg %s raw, the night's chunks avg %s", formatSize(a.WholeRaw/int64(a.Whole)), formatSize(a.AvgChunk))
		}
		if len(at) > 0 {
			fmt.Fprintf(w, ", at %s of the stream", strings.Join(at, ", "))
		}
		fmt.Fprintln(w, ")")
	}
}
