package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// pgDatabase is the database the pgbench benchmark creates and drops.
const pgDatabase = "bk_bench_pgbench"

// pgResult is the pgbench benchmark: two nights of a real PostgreSQL
// database, pg_dump before and after a fixed pgbench run.
type pgResult struct {
	Server       string        `json:"server"`
	Scale        int           `json:"scale"`
	Transactions int           `json:"transactions"`
	Clients      int           `json:"clients"`
	TPS          float64       `json:"tps"`
	SetupSec     float64       `json:"setup_s"`
	Dumps        []pgDump      `json:"dumps"`
	Tools        []*toolResult `json:"tools"`
	Skipped      string        `json:"skipped,omitempty"`
	Error        string        `json:"error,omitempty"`
}

// pgDump is one pg_dump output.
type pgDump struct {
	Format  string  `json:"format"`
	Night   int     `json:"night"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	file    string
}

const (
	pgPlain  = "plain SQL"
	pgCustom = "-Fc -Z0"
	// bkCustom is bk on the -Fc -Z0 dumps, in a repository of its own.
	bkCustom = "bk (-Fc -Z0)"
)

// pg runs the PostgreSQL client programs.
type pg struct {
	conninfo string // without dbname
	bin      map[string]string
}

// findPG finds psql, pgbench and pg_dump on PATH or in the Debian folders.
func findPG(conninfo string) (*pg, error) {
	p := &pg{conninfo: conninfo, bin: map[string]string{}}
	for _, name := range []string{"psql", "pgbench", "pg_dump"} {
		bin, err := exec.LookPath(name)
		if err != nil {
			matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
			if len(matches) == 0 {
				return nil, fmt.Errorf("%s not found (apt-get install postgresql-client postgresql-contrib)", name)
			}
			bin = matches[len(matches)-1]
		}
		p.bin[name] = bin
	}
	return p, nil
}

func (p *pg) db(name string) string { return strings.TrimSpace(p.conninfo + " dbname=" + name) }

// run runs one client program and returns its standard output.
func (p *pg) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.bin[name], args...)
	// Commits need not wait for the disk: the benchmark measures dumps.
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c synchronous_commit=off", "PGCONNECT_TIMEOUT=10")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (p *pg) sql(ctx context.Context, db string, stmts ...string) (string, error) {
	args := []string{"-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", p.db(db)}
	for _, s := range stmts {
		args = append(args, "-c", s)
	}
	return p.run(ctx, "psql", args...)
}

// benchPG runs the pgbench benchmark with the given tools (bk and restic are
// used). It creates the database, and drops it when done.
func benchPG(ctx context.Context, o options, work string, tools []*tool, progress io.Writer) *pgResult {
	res := &pgResult{Scale: o.pgScale, Transactions: o.pgTx * o.pgClients, Clients: o.pgClients}
	p, err := findPG(o.pgConn)
	if err != nil {
		res.Skipped = err.Error()
		return res
	}
	ver, err := p.sql(ctx, "postgres", "SHOW server_version")
	if err != nil {
		res.Skipped = fmt.Sprintf("PostgreSQL not reachable at %q: %s", o.pgConn, firstLine(err.Error()))
		return res
	}
	res.Server = "PostgreSQL " + strings.TrimSpace(ver)
	defer func() {
		// Drop the database even when interrupted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := p.sql(dctx, "postgres", "DROP DATABASE IF EXISTS "+pgDatabase); err != nil {
			res.Error = strings.TrimSpace(res.Error + "; drop database: " + err.Error())
		}
	}()
	if err := res.run(ctx, o, p, work, tools, progress); err != nil {
		res.Error = err.Error()
	}
	return res
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+)`)

func (res *pgResult) run(ctx context.Context, o options, p *pg, work string, tools []*tool, progress io.Writer) error {
	start := time.Now()
	fmt.Fprintf(progress, "bench: pgbench: creating %s, pgbench -i -s %d\n", pgDatabase, o.pgScale)
	if _, err := p.sql(ctx, "postgres", "DROP DATABASE IF EXISTS "+pgDatabase, "CREATE DATABASE "+pgDatabase); err != nil {
		return err
	}
	if _, err := p.run(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(o.pgScale), p.db(pgDatabase)); err != nil {
		return err
	}
	// Real rows carry data: md5 text compresses about 4x, like a dump does,
	// where pgbench's blank filler would compress 30x. VACUUM FULL leaves the
	// table compact, as after a restore, so updates move rows to its end.
	fmt.Fprintf(progress, "bench: pgbench: filling pgbench_accounts with md5 text\n")
	if _, err := p.sql(ctx, pgDatabase, "UPDATE pgbench_accounts SET filler = md5(aid::text)",
		"VACUUM FULL ANALYZE pgbench_accounts"); err != nil {
		return err
	}
	res.SetupSec = time.Since(start).Seconds()
	formats := []string{pgPlain}
	if o.pgCustom {
		formats = append(formats, pgCustom)
	}
	dump := func(night int) error {
		for _, f := range formats {
			d := pgDump{Format: f, Night: night}
			args := []string{"-d", p.db(pgDatabase), "--no-sync"}
			if f == pgPlain {
				d.file = filepath.Join(work, fmt.Sprintf("pg%d.sql", night))
				args = append(args, "-Fp", "-f", d.file)
			} else {
				d.file = filepath.Join(work, fmt.Sprintf("pg%d.dump", night))
				args = append(args, "-Fc", "-Z0", "-f", d.file)
			}
			fmt.Fprintf(progress, "bench: pgbench: pg_dump %s, night %d\n", f, night)
			t0 := time.Now()
			if _, err := p.run(ctx, "pg_dump", args...); err != nil {
				return err
			}
			d.Seconds = time.Since(t0).Seconds()
			fi, err := os.Stat(d.file)
			if err != nil {
				return err
			}
			d.Bytes = fi.Size()
			res.Dumps = append(res.Dumps, d)
		}
		return nil
	}
	if err := dump(1); err != nil {
		return err
	}
	fmt.Fprintf(progress, "bench: pgbench: pgbench -n -t %d -c %d\n", o.pgTx, o.pgClients)
	out, err := p.run(ctx, "pgbench", "-n", "-t", strconv.Itoa(o.pgTx), "-c", strconv.Itoa(o.pgClients),
		"-j", strconv.Itoa(o.pgClients), p.db(pgDatabase))
	if err != nil {
		return err
	}
	if m := tpsRE.FindStringSubmatch(out); m != nil {
		res.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if err := dump(2); err != nil {
		return err
	}

	nightsOf := func(format string) []night {
		var ns []night
		for _, d := range res.Dumps {
			if d.Format == format {
				ns = append(ns, night{N: d.Night, Bytes: d.Bytes, file: d.file})
			}
		}
		return ns
	}
	for _, t := range tools {
		var add []*tool
		var format string
		switch t.Name {
		case "bk":
			add, format = []*tool{newBKAt(t.bin, work, o.level, "repo-bk-pg")}, pgPlain
		case "restic":
			add, format = []*tool{newResticAt(t.bin, work, "repo-restic-pg")}, pgPlain
		default:
			continue
		}
		if t.Name == "bk" && o.pgCustom {
			fc := newBKAt(t.bin, work, o.level, "repo-bk-pg-custom")
			fc.Name = bkCustom
			add = append(add, fc)
		}
		for _, x := range add {
			x.Version = t.Version
			ns := nightsOf(format)
			if x.Name == bkCustom {
				ns = nightsOf(pgCustom)
			}
			res.Tools = append(res.Tools, runNights(ctx, x, ns, progress))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	for _, t := range res.Tools {
		if t.Error != "" {
			return errors.New(firstLine(t.Error))
		}
	}
	return nil
}

func (res *pgResult) tool(name string) *toolResult {
	for _, t := range res.Tools {
		if t.Name == name && t.Error == "" {
			return t
		}
	}
	return nil
}

func printPG(w io.Writer, res *pgResult) {
	if res == nil {
		return
	}
	if res.Skipped != "" {
		fmt.Fprintf(w, "\n== pgbench: skipped: %s\n", res.Skipped)
		return
	}
	fmt.Fprintf(w, "\n== pgbench: %s, database %s (dropped at the end)\n", res.Server, pgDatabase)
	fmt.Fprintf(w, "night 1: pgbench -i -s %d, pgbench_accounts.filler = md5(aid), VACUUM FULL (setup %.0f s)\n", res.Scale, res.SetupSec)
	fmt.Fprintf(w, "night 2: after pgbench -n -t %d -c %d: %s transactions at %.0f tps (synchronous_commit off)\n",
		res.Transactions/max(res.Clients, 1), res.Clients, withCommas(int64(res.Transactions)), res.TPS)
	tw := newTable(w)
	fmt.Fprintln(tw, "pg_dump format\tnight\tdump size\tpg_dump s")
	for _, d := range res.Dumps {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\n", d.Format, d.Night, formatSize(d.Bytes), d.Seconds)
	}
	tw.Flush()
	if len(res.Tools) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "tool\trun\twall s\tMB/s\tCPU s\tpeak RSS\tstored\tof night 1\tnotes")
		for _, t := range res.Tools {
			for i, x := range t.Runs {
				share, note := "-", ""
				if i > 0 {
					if _, p, ok := t.stored(i + 1); ok {
						share = fmt.Sprintf("%.2f%%", p)
					}
				}
				if s := x.Reported; s != nil {
					note = fmt.Sprintf("added %d blobs, %d as deltas", s.AddedBlobs, s.AddedDeltas)
				}
				fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\n", t.Name, x.Name, x.WallSec, x.MBps, x.CPUSec,
					formatSize(x.MaxRSS), formatSize(x.Added), share, note)
			}
			if t.Error != "" {
				fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t%s\n", t.Name, firstLine(t.Error))
			}
		}
		tw.Flush()
	}
	bk, rs, fc := res.tool("bk"), res.tool("restic"), res.tool(bkCustom)
	if bk != nil && rs != nil {
		a, b := bk.find(nightRun(2)).Added, rs.find(nightRun(2)).Added
		fmt.Fprintf(w, "night 2 stored, bk / restic: %s (%s / %s)\n", share(a, b), formatSize(a), formatSize(b))
	}
	if bk != nil && fc != nil {
		fmt.Fprintf(w, "night 2 stored by bk, plain SQL vs -Fc -Z0: %s vs %s\n",
			formatSize(bk.find(nightRun(2)).Added), formatSize(fc.find(nightRun(2)).Added))
	}
	if res.Error != "" {
		fmt.Fprintf(w, "pgbench FAILED: %s\n", firstLine(res.Error))
	}
}

// evaluatePG adds the pgbench target.
func evaluatePG(r *report) {
	if r.PG == nil || r.PG.Skipped != "" {
		return
	}
	t := target{Name: "bk pgbench night 2 stored", Want: "<= 10% of restic's", Missing: true}
	bk, rs := r.PG.tool("bk"), r.PG.tool("restic")
	if bk != nil && rs != nil {
		a, b := bk.find(nightRun(2)).Added, rs.find(nightRun(2)).Added
		if a > 0 && b > 0 {
			t.Got, t.OK, t.Missing = fmt.Sprintf("%.1f%% (%s / %s)", 100*float64(a)/float64(b), formatSize(a), formatSize(b)),
				a*10 <= b, false
		}
	}
	r.Targets = append(r.Targets, t)
}
