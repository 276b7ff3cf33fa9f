package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/engines/redis"
	"github.com/bk-backup/bk/repo"
)

// Restore drills (`bk check --restore-test`): each chosen database snapshot
// is loaded through its engine's Restore into a throwaway target, a
// bk_drill_<hex> database on a --scratch server, a temporary SQLite file, or
// for Redis a redis-server started on a free loopback port over a temporary
// directory. The target's exact row (or key) counts are then compared with
// the snapshot's manifest. The target is removed afterwards, whether the
// drill passed or not.

// Drill outcomes.
const (
	drillPass    = "pass"
	drillFail    = "fail"
	drillSkipped = "skipped"
)

// drillTable compares one table of the manifest with the restored database.
// For Redis a "table" is a logical database ("db0") and rows are keys.
type drillTable struct {
	Name string `json:"name"`
	// Manifest is the manifest's count, -1 when the manifest lacks the table.
	Manifest int64 `json:"manifest_rows"`
	// Restored is the exact count after the load, -1 when the table is missing.
	Restored int64 `json:"restored_rows"`
	// Expiring is, for Redis, how many of the manifest's keys carry an
	// expiry: they may be gone after the load, so Restored may be lower
	// than Manifest by up to this many.
	Expiring int64 `json:"manifest_expiring,omitempty"`
	Estimate bool  `json:"estimate,omitempty"`
	OK       bool  `json:"ok"`
}

// drillResult is the outcome of one source's drill.
type drillResult struct {
	Snapshot       string       `json:"snapshot"`
	Name           string       `json:"name"`
	Host           string       `json:"host"`
	Engine         string       `json:"engine"`
	Status         string       `json:"status"`
	Target         string       `json:"target,omitempty"`
	RestoreSeconds float64      `json:"restore_seconds"`
	RowsChecked    int64        `json:"rows_checked"` // keys, for Redis
	Tables         []drillTable `json:"tables,omitempty"`
	Problems       []string     `json:"problems,omitempty"`
	Reason         string       `json:"reason,omitempty"` // why a drill was skipped
}

// drillReport is the --json document of `bk check --restore-test`.
type drillReport struct {
	Drills   []drillResult `json:"drills"`
	Passed   int           `json:"passed"`
	Failed   int           `json:"failed"`
	Skipped  int           `json:"skipped"`
	Duration float64       `json:"duration_seconds"`
}

// drillTarget is a restore target that can count its rows and be removed.
type drillTarget interface {
	engines.Restorer
	CountRows(ctx context.Context) ([]engines.Table, error)
}

// dropper is a drill target on a server: its database is dropped afterwards.
type dropper interface {
	Drop(ctx context.Context) error
}

// parseScratch maps engine names to the --scratch server URLs
// (postgres://user@host[:port], mysql://user@host[:port], no database).
func parseScratch(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range list {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, usagef("--scratch %q is not a server URL like postgres://user@host:5432 or mysql://user@host:3306", s)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return nil, usagef("--scratch %s names a database; give only the server (the drill creates and drops bk_drill_* databases)", redact(u))
		}
		var eng string
		switch u.Scheme {
		case "postgres", "postgresql":
			eng = "postgres"
		case "mysql", "mariadb":
			eng = "mysql"
		default:
			return nil, usagef("--scratch %s: scratch servers are postgres:// or mysql:// (SQLite drills use a temporary file)", redact(u))
		}
		if _, dup := out[eng]; dup {
			return nil, usagef("--scratch given twice for %s", eng)
		}
		u.Path = ""
		out[eng] = u.String()
	}
	return out, nil
}

// drillSnapshots returns the snapshot ref, or else the newest good
// snapshot of every source (host and name) made by a database engine.
func drillSnapshots(ctx context.Context, r *repo.Repository, ref string) ([]*repo.Snapshot, error) {
	if ref != "" {
		s, err := r.FindSnapshot(ctx, ref, repo.Filter{})
		if err != nil {
			return nil, err
		}
		return []*repo.Snapshot{s}, nil
	}
	list, err := r.Snapshots(ctx, repo.Filter{})
	if err != nil {
		return nil, err
	}
	latest := map[string]*repo.Snapshot{}
	for _, s := range list { // oldest first
		if s.Status == "" && s.Kind == repo.KindTree {
			latest[s.Host+"\x00"+s.Name] = s
			continue
		}
		if s.Status != "" || len(s.Manifest) == 0 {
			continue
		}
		var m engines.Manifest
		if json.Unmarshal(s.Manifest, &m) != nil {
			continue
		}
		switch m.Engine {
		case "postgres", "mysql", "sqlite", "redis":
		default:
			continue // command snapshots: no engine to load them
		}
		latest[s.Host+"\x00"+s.Name] = s
	}
	out := make([]*repo.Snapshot, 0, len(latest))
	for _, s := range latest {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Host < out[j].Host
	})
	return out, nil
}

// runDrills drills every chosen snapshot, one after the other.
func runDrills(ctx context.Context, r *repo.Repository, ref string, scratch map[string]string, dbPasswordFile string) (*drillReport, error) {
	snaps, err := drillSnapshots(ctx, r, ref)
	if err != nil {
		return nil, err
	}
	rep := &drillReport{Drills: []drillResult{}}
	for _, s := range snaps {
		d := drill(ctx, r, s, scratch, dbPasswordFile)
		switch d.Status {
		case drillPass:
			rep.Passed++
		case drillFail:
			rep.Failed++
		default:
			rep.Skipped++
		}
		rep.Drills = append(rep.Drills, d)
	}
	return rep, nil
}

// drill restores one snapshot into a throwaway target and compares it with
// its manifest.
func drill(ctx context.Context, r *repo.Repository, s *repo.Snapshot, scratch map[string]string, dbPasswordFile string) (d drillResult) {
	d = drillResult{Snapshot: s.ID.String(), Name: s.Name, Host: s.Host, Status: drillFail}
	fail := func(format string, args ...any) drillResult {
		d.Status = drillFail
		d.Problems = append(d.Problems, fmt.Sprintf(format, args...))
		return d
	}
	skip := func(why string) drillResult {
		d.Status, d.Reason = drillSkipped, why
		return d
	}
	if s.Kind == repo.KindTree {
		return drillTree(ctx, r, s, d, fail)
	}
	var m engines.Manifest
	if len(s.Manifest) == 0 {
		return skip("the snapshot has no engine manifest (a command snapshot): nothing to compare with")
	}
	if err := json.Unmarshal(s.Manifest, &m); err != nil {
		return fail("the manifest does not parse: %v", err)
	}
	d.Engine = m.Engine

	var target string
	var into engines.Restorer
	switch m.Engine {
	case "postgres", "mysql":
		if m.Database == "" || m.Database == "*" || m.Database == "(globals)" {
			return skip(fmt.Sprintf("restore drills of %s dumps of a whole server (%q) are not supported yet", m.Engine, m.Database))
		}
		srv, ok := scratch[m.Engine]
		if !ok {
			return fail("no --scratch for %s: give --scratch %s://USER@HOST[:PORT] (a server the drill may create and drop bk_drill_* databases on)", m.Engine, m.Engine)
		}
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fail("random name: %v", err)
		}
		target = srv + "/bk_drill_" + hex.EncodeToString(b[:])
	case "sqlite":
		dir, err := os.MkdirTemp("", "bk-drill-")
		if err != nil {
			return fail("temporary directory: %v", err)
		}
		defer os.RemoveAll(dir)
		target = (&url.URL{Scheme: "sqlite", Path: filepath.Join(dir, "drill.db")}).String()
	case "redis":
		sc, err := redis.NewScratch(redis.ScratchOptions{})
		if errors.Is(err, redis.ErrNoServer) {
			return skip(fmt.Sprintf("a redis drill loads the snapshot into a throwaway redis-server: %v", err))
		}
		if err != nil {
			return fail("%v", err)
		}
		into = sc
	default:
		return skip(fmt.Sprintf("restore drills of %s snapshots are not supported", m.Engine))
	}
	d.Target = target

	if into == nil {
		var err error
		if into, err = restorer(target, dbPasswordFile); err != nil {
			return fail("scratch target: %v", err)
		}
	}
	t, ok := into.(drillTarget)
	if !ok {
		return fail("the %s engine cannot count rows", m.Engine)
	}
	if dr, ok := into.(dropper); ok {
		// Drop even when ctx ended (an interrupt): the scratch database
		// must not stay behind.
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := dr.Drop(dctx); err != nil {
				d.Status = drillFail
				d.Problems = append(d.Problems, fmt.Sprintf("drop the scratch database (drop it by hand): %v", err))
			}
		}()
	}

	start := time.Now()
	err := restoreInto(ctx, r, s, t, false, &repo.Progress{})
	d.RestoreSeconds = time.Since(start).Seconds()
	if sc, ok := into.(*redis.Scratch); ok && sc.Addr() != "" {
		d.Target = "redis://" + sc.Addr()
	}
	if err != nil {
		return fail("restore: %v", err)
	}
	got, err := t.CountRows(ctx)
	if err != nil {
		return fail("count rows: %v", err)
	}
	if m.Engine == "redis" && m.Keyspace != nil {
		d.Tables, d.RowsChecked, d.Problems = compareKeyspace(m.Keyspace, got)
	} else {
		// Older redis manifests have only INFO keyspace estimates.
		d.Tables, d.RowsChecked, d.Problems = compareTables(m.Tables, got)
	}
	if len(d.Problems) == 0 {
		d.Status = drillPass
	}
	return d
}

// compareTables matches the restored tables against the manifest: the sets
// must be equal, and exact manifest counts must match; estimates are
// reported but never fail.
func compareTables(manifest, restored []engines.Table) ([]drillTable, int64, []string) {
	got := map[string]int64{}
	var rows int64
	for _, t := range restored {
		got[t.Name] = t.Rows
		rows += t.Rows
	}
	want := map[string]bool{}
	var out []drillTable
	var problems []string
	for _, mt := range manifest {
		want[mt.Name] = true
		dt := drillTable{Name: mt.Name, Manifest: mt.Rows, Restored: -1, Estimate: mt.Estimate}
		n, ok := got[mt.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("table %s is in the manifest but not in the restored database", mt.Name))
		case !mt.Estimate && n != mt.Rows:
			dt.Restored = n
			problems = append(problems, fmt.Sprintf("table %s: %d rows restored, the manifest counted %d", mt.Name, n, mt.Rows))
		default:
			dt.Restored, dt.OK = n, true
		}
		out = append(out, dt)
	}
	for _, t := range restored {
		if !want[t.Name] {
			out = append(out, drillTable{Name: t.Name, Manifest: -1, Restored: t.Rows})
			problems = append(problems, fmt.Sprintf("table %s is in the restored database but not in the manifest", t.Name))
		}
	}
	return out, rows, problems
}

// compareKeyspace matches the key counts of a restored Redis server (one
// table per non-empty logical database, "db0", ...) against the manifest's
// exact counts. A database may hold fewer keys than the manifest by at most
// its keys with an expiry, which are dropped at load once expired; any
// other difference fails.
func compareKeyspace(ks *engines.Keyspace, restored []engines.Table) ([]drillTable, int64, []string) {
	got := map[string]int64{}
	var keys int64
	for _, t := range restored {
		got[t.Name] = t.Rows
		keys += t.Rows
	}
	want := map[string]bool{}
	var out []drillTable
	var problems []string
	for _, db := range ks.DBs {
		name := fmt.Sprintf("db%d", db.DB)
		want[name] = true
		n := got[name] // a database whose keys all expired is not listed
		dt := drillTable{Name: name, Manifest: db.Keys, Restored: n, Expiring: db.Expires}
		if n <= db.Keys && n >= db.Keys-db.Expires {
			dt.OK = true
		} else if db.Expires > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d keys restored, the manifest counted %d of which %d expire (want %d to %d)",
				name, n, db.Keys, db.Expires, db.Keys-db.Expires, db.Keys))
		} else {
			problems = append(problems, fmt.Sprintf("%s: %d keys restored, the manifest counted %d", name, n, db.Keys))
		}
		out = append(out, dt)
	}
	for _, t := range restored {
		if !want[t.Name] {
			out = append(out, drillTable{Name: t.Name, Manifest: -1, Restored: t.Rows})
			problems = append(problems, fmt.Sprintf("%s holds %d keys after the restore but is not in the manifest", t.Name, t.Rows))
		}
	}
	return out, keys, problems
}

// drillTree restores a directory snapshot into a temporary folder, every
// file verified against its hash, and checks that every entry arrived.
func drillTree(ctx context.Context, r *repo.Repository, s *repo.Snapshot, d drillResult, fail func(string, ...any) drillResult) drillResult {
	d.Engine = "dir"
	dir, err := os.MkdirTemp("", "bk-drill-")
	if err != nil {
		return fail("temporary directory: %v", err)
	}
	defer os.RemoveAll(dir)
	d.Target = dir
	start := time.Now()
	st, err := restoreTree(ctx, r, s, filepath.Join(dir, "tree"), nil, nil)
	d.RestoreSeconds = time.Since(start).Seconds()
	if err != nil {
		return fail("restore: %v", err)
	}
	d.RowsChecked = st.Files
	if got := st.Nodes + int64(len(st.Skipped)); got != s.Nodes {
		return fail("restored %d entries, the snapshot has %d", got, s.Nodes)
	}
	d.Status = drillPass
	return d
}

// printDrills prints one line per source, its problems and its differing
// estimates, then a summary.
func (a *app) printDrills(rep *drillReport) {
	for _, d := range rep.Drills {
		id := d.Snapshot[:8]
		switch d.Status {
		case drillSkipped:
			fmt.Fprintf(a.stdout, "skip %s (%s) snapshot %s: %s\n", d.Name, d.Host, id, d.Reason)
			continue
		case drillPass:
			estimates := 0
			for _, t := range d.Tables {
				if t.Estimate {
					estimates++
				}
			}
			note := ""
			if estimates > 0 {
				note = fmt.Sprintf(" (%d against manifest estimates)", estimates)
			}
			table, rows := "table", "rows"
			switch d.Engine {
			case "redis":
				table, rows = "database", "keys"
			case "dir":
				fmt.Fprintf(a.stdout, "pass %s (%s) snapshot %s: restored in %.1fs, %d files checked\n",
					d.Name, d.Host, id, d.RestoreSeconds, d.RowsChecked)
				continue
			}
			fmt.Fprintf(a.stdout, "pass %s (%s) snapshot %s: restored in %.1fs, %s, %d %s checked%s\n",
				d.Name, d.Host, id, d.RestoreSeconds, plural(len(d.Tables), table), d.RowsChecked, rows, note)
		default:
			rows := "rows"
			if d.Engine == "redis" {
				rows = "keys"
			}
			fmt.Fprintf(a.stdout, "FAIL %s (%s) snapshot %s: restored in %.1fs, %d %s checked\n",
				d.Name, d.Host, id, d.RestoreSeconds, d.RowsChecked, rows)
		}
		for _, p := range d.Problems {
			fmt.Fprintf(a.stdout, "  error: %s\n", p)
		}
		for _, t := range d.Tables {
			if t.Estimate && t.OK && t.Restored != t.Manifest {
				fmt.Fprintf(a.stdout, "  estimate: table %s: %d rows restored, manifest estimate %d\n", t.Name, t.Restored, t.Manifest)
			}
		}
	}
	if len(rep.Drills) == 0 {
		fmt.Fprintln(a.stdout, "no database or directory snapshots (postgres, mysql, sqlite, redis, dir) to drill")
	}
	fmt.Fprintf(a.stdout, "restore drills: %d passed, %d failed, %d skipped in %.1fs\n",
		rep.Passed, rep.Failed, rep.Skipped, rep.Duration)
}

// drillSummary is the error of a run with failed drills.
func drillSummary(rep *drillReport) error {
	if rep.Failed == 0 {
		return nil
	}
	return fmt.Errorf("restore drill failed for %s", strings.TrimSpace(plural(rep.Failed, "source")))
}
