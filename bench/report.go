package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/bk-backup/bk/bench/gen"
)

// report is everything the benchmark found; -json writes it as is.
type report struct {
	Size       int64          `json:"size"`
	Seed       uint64         `json:"seed"`
	Dir        string         `json:"dir"`
	Platform   string         `json:"platform"`
	Data       gen.Stats      `json:"data"`
	GenSeconds float64        `json:"gen_seconds"`
	Costs      *costs         `json:"costs,omitempty"`
	Tools      []*toolResult  `json:"tools"`
	Targets    []target       `json:"targets"`
	Notices    []string       `json:"notices,omitempty"`
	Ratios     []ratioSummary `json:"ratios,omitempty"`
	// IndexBytesPerBlob is the heap cost of one blob in bk's in-memory index.
	IndexBytesPerBlob float64 `json:"index_bytes_per_blob"`

	Nights *nightsResult `json:"nights,omitempty"`
	Chain  *chainResult  `json:"chain,omitempty"`
	Fetch  *fetchResult  `json:"base_fetch,omitempty"`
	PG     *pgResult     `json:"pgbench,omitempty"`

	Retention *retentionResult `json:"retention,omitempty"`
	Days      *daysResult      `json:"days,omitempty"`
	S3        *s3Result        `json:"s3,omitempty"`
}

// target is one goal printed beside the results; missing is true when the
// result it needs was not measured.
type target struct {
	Name    string `json:"name"`
	Want    string `json:"want"`
	Got     string `json:"got"`
	OK      bool   `json:"ok"`
	Missing bool   `json:"missing,omitempty"`
}

// ratioSummary compares bk with another tool on one run.
type ratioSummary struct {
	Other string  `json:"other"`
	Run   string  `json:"run"`
	Speed float64 `json:"speed_ratio,omitempty"` // bk MB/s over the other's
	Added float64 `json:"added_ratio,omitempty"` // bk added bytes over the other's
}

func (r *report) tool(name string) *toolResult {
	for _, t := range r.Tools {
		if t.Name == name && t.Error == "" {
			return t
		}
	}
	return nil
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func pct(part, whole int64) float64 { return 100 * float64(part) / float64(max(whole, 1)) }

func printData(w io.Writer, r *report) {
	d := r.Data
	fmt.Fprintf(w, "\n== Data (seed %d)\n", r.Seed)
	tw := newTable(w)
	var tables []string
	for _, t := range d.Tables {
		tables = append(tables, fmt.Sprintf("%s %.0f%%", t.Name, pct(t.Bytes, d.OrigBytes)))
	}
	fmt.Fprintf(tw, "dump\t%s\t%s rows in %d tables (%s)\n", formatSize(d.OrigBytes), withCommas(d.Rows), len(d.Tables), strings.Join(tables, ", "))
	edits := d.Changed + d.Inserted + d.Deleted
	fmt.Fprintf(tw, "edited copy\t%s\t%.2f%% of rows: %s changed, %s inserted, %s deleted\n", formatSize(d.EditedBytes),
		pct(edits, d.Rows), withCommas(d.Changed), withCommas(d.Inserted), withCommas(d.Deleted))
	fmt.Fprintf(tw, "\t\tone edit every %s on average, so most chunks of a chunking deduplicator change\n",
		formatSize(d.EditedBytes/max(edits, 1)))
	fmt.Fprintf(tw, "ideal increment\t%s\tzstd default of the changed and inserted rows alone (%s raw)\n", formatSize(d.IdealBytes), formatSize(d.EditBytes))
	fmt.Fprintf(tw, "generated in\t%.1f s\t%.0f MB/s of dump, both streams written\n", r.GenSeconds, mbps(d.OrigBytes, r.GenSeconds))
	tw.Flush()
}

func printCosts(w io.Writer, c *costs) {
	fmt.Fprintf(w, "\n== Component costs (one core, %s sample of the dump, %d chunks)\n", formatSize(c.SampleBytes), c.Chunks)
	tw := newTable(w)
	fmt.Fprintln(tw, "stage\tCPU s/GB\tMB/s\tratio\tnotes")
	for _, s := range c.Stages {
		rt := ""
		if s.Ratio > 0 {
			rt = fmt.Sprintf("%.2fx", s.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.0f\t%s\t%s\n", s.Name, s.SecPerGB, s.MBps(), rt, s.Note)
	}
	tw.Flush()
	var parts []string
	for _, s := range c.Stages {
		if s.Name == "chunker" || s.Name == "blake3 keyed" || s.Name == "zstd "+c.Level || s.Name == "aes-256-gcm" {
			parts = append(parts, fmt.Sprintf("%.3f", s.DumpSecPerGB))
		}
	}
	fmt.Fprintf(w, "two-core ceiling, first snapshot at zstd %s: %.0f MB/s = 1000 / max(chunker %.3f, (%s)/2 = %.3f) s/GB\n",
		c.Level, c.CeilingMBps, 1000/c.ChunkerMBps, strings.Join(parts, " + "), c.PipelineSecPerGB)
	fmt.Fprintln(w, "(AES is counted per GB of dump, i.e. over the compressed bytes)")
}

func printRuns(w io.Writer, r *report) {
	fmt.Fprintf(w, "\n== End to end\n")
	for _, t := range r.Tools {
		v := t.Version
		if v == "" {
			v = t.Name
		}
		fmt.Fprintf(w, "%-7s %s: %s\n", t.Name, v, t.Settings)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "tool\trun\tstream\twall s\tMB/s\tCPU s\tpeak RSS\trepo added\tnotes")
	for _, t := range r.Tools {
		for _, x := range t.Runs {
			added, note := formatSize(x.Added), ""
			switch {
			case x.Name == runRestore:
				added = "-"
			case x.Name == runEdited:
				note = fmt.Sprintf("%s of the ideal %s", ratio(float64(x.Added), float64(r.Data.IdealBytes)), formatSize(r.Data.IdealBytes))
			}
			if x.Reported != nil {
				note = strings.TrimSpace(note + fmt.Sprintf("  bk reports added_bytes %s", formatSize(x.Reported.AddedBytes)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\n", t.Name, x.Name, formatSize(x.StreamBytes),
				x.WallSec, x.MBps, x.CPUSec, formatSize(x.MaxRSS), added, note)
		}
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t%s\n", t.Name, firstLine(t.Error))
		}
	}
	tw.Flush()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// compare fills r.Ratios and prints bk's ratios to each other tool.
func compare(w io.Writer, r *report) {
	bk := r.tool("bk")
	if bk == nil {
		return
	}
	var others []*toolResult
	for _, t := range r.Tools {
		if t.Name != "bk" && t.Error == "" {
			others = append(others, t)
		}
	}
	if len(others) == 0 {
		return
	}
	fmt.Fprintf(w, "\n== bk compared (throughput: bk MB/s / other MB/s, higher is better; added: bk bytes / other bytes, lower is better)\n")
	tw := newTable(w)
	head := "run"
	for _, o := range others {
		head += fmt.Sprintf("\tbk/%s MB/s\tbk/%s added", o.Name, o.Name)
	}
	fmt.Fprintln(tw, head)
	for _, name := range []string{runFirst, runIdentical, runEdited, runRestore} {
		line := name
		b := bk.find(name)
		for _, o := range others {
			x := o.find(name)
			rs := ratioSummary{Other: o.Name, Run: name}
			if b.MBps > 0 && x.MBps > 0 {
				rs.Speed = b.MBps / x.MBps
			}
			added := "-"
			if name != runRestore && b.Added > 0 && x.Added > 0 {
				rs.Added = float64(b.Added) / float64(x.Added)
				added = ratio(float64(b.Added), float64(x.Added))
			}
			r.Ratios = append(r.Ratios, rs)
			line += fmt.Sprintf("\t%s\t%s", ratio(b.MBps, x.MBps), added)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// evaluate computes the targets from what was measured.
func evaluate(r *report) {
	bk := r.tool("bk")
	add := func(name, want string, got float64, ok bool, unit string, known bool) {
		t := target{Name: name, Want: want, OK: known && ok, Missing: !known}
		if known {
			t.Got = fmt.Sprintf("%.0f %s", got, unit)
			if unit == "x" {
				t.Got = fmt.Sprintf("%.2fx", got)
			}
		}
		r.Targets = append(r.Targets, t)
	}
	var ceiling, chunker float64
	if r.Costs != nil {
		ceiling, chunker = r.Costs.CeilingMBps, r.Costs.ChunkerMBps
	}
	first, ident, rest := bk.find(runFirst), bk.find(runIdentical), bk.find(runRestore)
	add("bk first snapshot", fmt.Sprintf(">= 80%% of ceiling (%.0f MB/s)", 0.8*ceiling), first.MBps,
		first.MBps >= 0.8*ceiling, "MB/s", first.MBps > 0 && ceiling > 0)
	add("bk identical re-snapshot", fmt.Sprintf(">= 80%% of chunker alone (%.0f MB/s)", 0.8*chunker), ident.MBps,
		ident.MBps >= 0.8*chunker, "MB/s", ident.MBps > 0 && chunker > 0)
	add("bk restore", ">= 400 MB/s", rest.MBps, rest.MBps >= 400, "MB/s", rest.MBps > 0)
	var rss int64
	worst := ""
	names, runs := bkRuns(r)
	for i, x := range runs {
		if x.MaxRSS > rss {
			rss, worst = x.MaxRSS, names[i]
		}
	}
	add(fmt.Sprintf("bk peak RSS, all %d bk runs", len(runs)), "< 300 MiB", float64(rss)/(1<<20), rss < 300<<20, "MiB", rss > 0)
	if rss > 0 {
		r.Targets[len(r.Targets)-1].Got += " (" + worst + ")"
	}
	add("bk in-memory index", "<= 64 bytes per blob", r.IndexBytesPerBlob, r.IndexBytesPerBlob <= 64, "bytes/blob", r.IndexBytesPerBlob > 0)
	rf := r.tool("restic").find(runFirst)
	add("bk/restic first snapshot", ">= 1.5x", first.MBps/max(rf.MBps, 1e-9), first.MBps >= 1.5*rf.MBps, "x", first.MBps > 0 && rf.MBps > 0)
}

func printTargets(w io.Writer, r *report) {
	fmt.Fprintf(w, "\n== Targets (printed, never enforced)\n")
	tw := newTable(w)
	for _, t := range r.Targets {
		mark, got := "below", t.Got
		switch {
		case t.Missing:
			mark, got = "n/a", "not measured"
		case t.OK:
			mark = "ok"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, got, mark)
	}
	tw.Flush()
	for _, n := range r.Notices {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func writeJSON(path string, r *report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
