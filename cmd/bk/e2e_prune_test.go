package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// forgetOut is the --json document of forget and prune, as a consumer reads it.
type forgetOut struct {
	DryRun bool `json:"dry_run"`
	Groups []struct {
		Group struct {
			Host string `json:"host"`
			Name string `json:"name"`
		} `json:"group"`
		Snapshots []struct {
			ID     string   `json:"id"`
			Name   string   `json:"name"`
			Action string   `json:"action"`
			Rules  []string `json:"rules"`
		} `json:"snapshots"`
	} `json:"groups"`
	Kept    int `json:"kept"`
	Removed int `json:"removed"`
	Prune   *struct {
		Snapshots int `json:"snapshots"`
		Delete    []struct {
			ID string `json:"id"`
		} `json:"delete"`
		Repack  []struct{ ID string } `json:"repack"`
		Orphans []struct{ ID string } `json:"orphans"`
		Reclaim int64                 `json:"reclaim_bytes"`
	} `json:"prune"`
}

// nights returns n versions of a stream: each overwrites a few bytes of the
// one before, so it is stored mostly as deltas.
func nights(seed uint64, size, n int) [][]byte {
	cur := randomData(seed, size)
	rng := randomData(seed+1, 8*n)
	out := [][]byte{cur}
	for i := 1; i < n; i++ {
		cur = slices.Clone(cur)
		for j := range 4 {
			off := (int(rng[8*i+2*j])<<8 | int(rng[8*i+2*j+1])) * (size / 65536)
			copy(cur[off:], fmt.Sprintf("night %d edit %d", i, j))
		}
		out = append(out, cur)
	}
	return out
}

// dirSize returns the total size of the files under dir.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestE2EForgetPrune drives forget and prune through the CLI: dry runs that
// change nothing, a policy, named snapshots, prune with a policy, and the
// usage errors.
func TestE2EForgetPrune(t *testing.T) {
	t.Parallel()
	r := newRepo(t, "--pack-size", "1048576", "--chunk-size", "64KiB")
	data := nights(1, 3<<20, 5)
	ids := make([]string, len(data))
	for i, d := range data {
		ids[i] = r.snapshot(d, "--name", "app", "--time", fmt.Sprintf("2026-11-0%dT01:00:00Z", i+1)).ID
	}
	scratch := randomData(9, 1<<20)
	tmp := r.snapshot(scratch, "--name", "tmp").ID

	// A dry run shows the decisions and changes nothing.
	var out forgetOut
	decodeJSON(t, r.must(nil, "forget", "--keep-last", "2", "--dry-run", "--json").stdout, &out)
	if !out.DryRun || out.Kept != 3 || out.Removed != 3 || len(out.Groups) != 2 {
		t.Fatalf("dry run: %+v", out)
	}
	for _, s := range out.Groups[0].Snapshots { // app, newest first
		want := "remove"
		if s.ID == ids[4] || s.ID == ids[3] {
			want = "keep"
		}
		if s.Action != want || len(s.Rules) != 1 {
			t.Errorf("snapshot %s: %s %v, want %s", s.ID[:8], s.Action, s.Rules, want)
		}
	}
	if len(r.snapshotIDs()) != 6 {
		t.Fatal("forget --dry-run removed snapshots")
	}
	res := r.must(nil, "forget", "--keep-last", "2")
	for _, want := range []string{"host ", "name app", "keep", "remove", "last", "no rule", "removed 3 snapshots"} {
		if !strings.Contains(string(res.stdout), want) {
			t.Errorf("forget output lacks %q:\n%s", want, res.stdout)
		}
	}
	r.must(nil, "forget", tmp[:8])
	if got, want := r.snapshotIDs(), slices.Sorted(slices.Values(ids[3:])); !slices.Equal(got, want) {
		t.Fatalf("snapshots %v, want %v", got, want)
	}

	before, files := dirSize(t, filepath.Join(r.path, "data")), r.files("data")
	decodeJSON(t, r.must(nil, "prune", "--dry-run", "--json").stdout, &out)
	if out.Prune == nil || out.Prune.Reclaim < 1<<20 || len(out.Prune.Delete) == 0 {
		t.Fatalf("prune --dry-run: %+v", out.Prune)
	}
	if !slices.Equal(files, r.files("data")) {
		t.Fatal("prune --dry-run changed the packs")
	}
	res = r.must(nil, "prune")
	if !strings.Contains(string(res.stdout), "reclaimed") {
		t.Errorf("prune output:\n%s", res.stdout)
	}
	after := dirSize(t, filepath.Join(r.path, "data"))
	t.Logf("prune: %d → %d bytes of packs", before, after)
	if before-after < out.Prune.Reclaim/2 {
		t.Errorf("prune reclaimed %d bytes, the dry run promised %d", before-after, out.Prune.Reclaim)
	}
	for i := 3; i < 5; i++ {
		r.wantRestore(ids[i], data[i])
	}
	r.must(nil, "check", "--read-data")

	// prune with a policy: forget, then reclaim, in one run.
	decodeJSON(t, r.must(nil, "prune", "--keep-last", "1", "--max-unused", "0%", "--json").stdout, &out)
	if out.Removed != 1 || out.Prune == nil || out.Prune.Snapshots != 1 {
		t.Fatalf("prune --keep-last 1: %+v", out)
	}
	r.wantRestore(ids[4], data[4])
	decodeJSON(t, r.must(nil, "prune", "--max-unused", "0", "--dry-run", "--json").stdout, &out)
	if out.Prune.Reclaim != 0 || len(out.Prune.Delete)+len(out.Prune.Repack)+len(out.Prune.Orphans) != 0 {
		t.Fatalf("a second prune has work left: %+v", out.Prune)
	}
	r.must(nil, "check", "--read-data")

	for _, args := range [][]string{
		{"forget"},
		{"forget", "--keep-last", "1", ids[4]},
		{"forget", "--keep-within", "7x"},
		{"forget", "--keep-daily", "-2"},
		{"forget", "--keep-last", "1", "--group-by", "time"},
		{"forget", "--keep-last", "1", "--max-unused", "1%"},
		{"prune", "--max-unused", "200%"},
		{"prune", "--max-repack-size", "lots"},
		{"prune", "--name", "app"},
	} {
		r.run(nil, args...).wantFail(t, exitUsage)
	}
	// The newest good snapshot of a group survives any policy.
	r.must(nil, "forget", "--keep-tag", "none")
	r.wantRestore(ids[4], data[4])
}

// TestE2EPruneLocked: a running snapshot holds a shared lock, so forget and
// prune fail with exit 11 and change nothing while a dry run proceeds; once
// the snapshot is killed its lock is stale and prune runs.
func TestE2EPruneLocked(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	data := randomData(3, 1<<20)
	id := r.snapshot(data, "--name", "a").ID
	r.snapshot(randomData(4, 1<<20), "--name", "a")
	p := r.start(nil, "snapshot", "--name", "s", "--", "sh", "-c", "sleep 30")
	waitFor(t, 30*time.Second, "the snapshot's lock", func() bool { return len(r.files("locks")) == 1 })

	r.run(nil, "prune").wantFail(t, exitLocked, "locked", "shared lock by PID")
	r.run(nil, "forget", "--keep-last", "1").wantFail(t, exitLocked, "locked")
	if len(r.snapshotIDs()) != 2 {
		t.Fatal("a locked forget removed snapshots")
	}
	r.must(nil, "prune", "--keep-last", "1", "--dry-run")

	p.kill()
	if res := p.wait(); res.code != -1 {
		t.Fatalf("want bk killed by a signal\n%s", res)
	}
	r.must(nil, "prune", "--keep-last", "1")
	if ids := r.snapshotIDs(); len(ids) != 1 || ids[0] == id {
		t.Fatalf("snapshots after prune: %v", ids)
	}
}

// TestE2EKillDuringPrune SIGKILLs bk prune at each of its phases (right
// after it locks, while it writes new packs, after it wrote the new index,
// while it deletes) on copies of one repository. Each time, every kept
// snapshot restores, check finds no error, and a rerun finishes the prune.
func TestE2EKillDuringPrune(t *testing.T) {
	t.Parallel()
	base := newRepo(t, "--pack-size", "1048576", "--chunk-size", "64KiB")
	// Eight nights: blocks of a stream of 4 MiB edited a little each night
	// alternate with blocks of data only that night has, so the packs of
	// forgotten nights hold used and unused chunks: forgetting leaves many
	// packs to delete and, with --max-unused 0%, many to repack.
	kept := map[string][]byte{}
	streams := nights(7, 4<<20, 8)
	for i, s := range streams {
		unique := randomData(uint64(100+i), len(s))
		var d []byte
		for off := 0; off < len(s); off += 128 << 10 {
			d = append(append(d, s[off:off+128<<10]...), unique[off:off+128<<10]...)
		}
		id := base.snapshot(d, "--name", "db", "--time", fmt.Sprintf("2026-11-%02dT01:00:00Z", i+1)).ID
		if i >= 6 {
			kept[id] = d
		}
	}
	base.must(nil, "forget", "--keep-last", "2")
	origIndex, origData := base.files("index"), base.files("data")

	newFiles := func(r *testRepo, ns string, orig []string) int {
		n := 0
		for _, f := range r.files(ns) {
			if !slices.Contains(orig, f) {
				n++
			}
		}
		return n
	}
	goneFiles := func(r *testRepo, ns string, orig []string) int {
		have := r.files(ns)
		n := 0
		for _, f := range orig {
			if !slices.Contains(have, f) {
				n++
			}
		}
		return n
	}
	phases := []struct {
		name string
		at   func(r *testRepo) bool
	}{
		{"locked", func(r *testRepo) bool { return len(r.files("locks")) > 0 }},
		{"first new pack", func(r *testRepo) bool { return newFiles(r, "data", origData) >= 1 }},
		{"new packs", func(r *testRepo) bool { return newFiles(r, "data", origData) >= 4 }},
		{"new index", func(r *testRepo) bool { return newFiles(r, "index", origIndex) >= 1 }},
		{"old index deleted", func(r *testRepo) bool { return goneFiles(r, "index", origIndex) >= 1 }},
		{"packs deleted", func(r *testRepo) bool { return goneFiles(r, "data", origData) >= 5 }},
	}
	killed := 0
	for i, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			r := copyRepo(t, base, fmt.Sprint("repo", i))
			p := r.start(nil, "prune", "--max-unused", "0%")
			for !ph.at(r) && !p.exited() {
				time.Sleep(200 * time.Microsecond)
			}
			p.kill()
			res := p.wait()
			state := fmt.Sprintf("%d new packs, %d new index files, %d old index files and %d old packs deleted",
				newFiles(r, "data", origData), newFiles(r, "index", origIndex), goneFiles(r, "index", origIndex), goneFiles(r, "data", origData))
			switch res.code {
			case -1:
				killed++
				t.Logf("killed: %s", state)
			case 0:
				t.Logf("prune finished before the kill")
			default:
				t.Fatalf("prune failed\n%s", res)
			}
			for id, d := range kept {
				r.wantRestore(id, d)
			}
			if res := r.run(nil, "check"); res.code != 0 {
				t.Fatalf("check after the kill\n%s\n%s", res, res.stdout)
			}
			r.must(nil, "prune", "--max-unused", "0%")
			var out forgetOut
			decodeJSON(t, r.must(nil, "prune", "--max-unused", "0%", "--dry-run", "--json").stdout, &out)
			if len(out.Prune.Delete)+len(out.Prune.Repack)+len(out.Prune.Orphans) != 0 {
				t.Fatalf("the rerun left work: %+v", out.Prune)
			}
			for id, d := range kept {
				r.wantRestore(id, d)
			}
			r.must(nil, "check", "--read-data")
		})
	}
	if killed < 3 {
		t.Errorf("only %d of %d kills hit a running prune", killed, len(phases))
	}
}

// copyRepo copies the repository folder of r to a new folder named name.
func copyRepo(t *testing.T, r *testRepo, name string) *testRepo {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(r.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.path, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, path: dst, env: append(slices.Clone(baseEnv()), "BK_REPO="+dst, "BK_PASSWORD="+testPassword)}
}
