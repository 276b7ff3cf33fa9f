package repo_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// repairIndex runs RepairIndex on be as a new process would.
func repairIndex(t *testing.T, be store.Backend) *repo.RepairReport {
	t.Helper()
	rep, err := repotest.Reopen(t, be).RepairIndex(context.Background())
	if err != nil {
		t.Fatalf("repair index: %v", err)
	}
	for _, w := range rep.Warnings {
		t.Logf("repair index: %s", w)
	}
	return rep
}

// restoreAll restores every snapshot from be, as a new process would, and
// compares it with want.
func restoreAll(t *testing.T, be store.Backend, snaps []*repo.Snapshot, want [][]byte) {
	t.Helper()
	r := repotest.Reopen(t, be)
	for i, s := range snaps {
		mustRestore(t, r, s, want[i])
	}
}

// TestRepairIndexDeleted: with every index file deleted, check fails;
// repair index rebuilds the index from the pack headers (delta entries
// included), after which check --read-data is clean and every night
// restores.
func TestRepairIndexDeleted(t *testing.T) {
	be := mem.New()
	_, snaps, data := nights(t, be, 3)
	packs := names(t, be, store.PackFile)
	for _, h := range handles(t, be, store.IndexFile) {
		if err := be.Delete(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	rep := runCheck(t, be, repo.CheckOptions{})
	if len(rep.Problems) != len(snaps) || len(rep.Warnings) != len(packs) {
		t.Fatalf("check without an index: %d problems and %d warnings; want a missing tree per snapshot and every pack unreferenced",
			len(rep.Problems), len(rep.Warnings))
	}

	rr := repairIndex(t, be)
	if rr.Packs != len(packs) || len(rr.Added) != len(packs) || len(rr.Written) == 0 || len(rr.Removed) != 0 ||
		len(rr.Warnings) != 0 {
		t.Fatalf("repair report %+v; want %d packs added", rr, len(packs))
	}
	wantClean(t, runCheck(t, be, repo.CheckOptions{ReadData: true}))
	restoreAll(t, be, snaps, data)
}

// TestRepairIndexCorruptFile: a damaged index file is replaced; the new
// index supersedes every old file, and a superseded file that comes back
// (as after a crash between writing and deleting) is ignored.
func TestRepairIndexCorruptFile(t *testing.T) {
	b := newTamperBase(t)
	be := clone(t, b.be)
	old := handles(t, be, store.IndexFile)
	oldBytes := read(t, be, old[0])
	rewrite(t, be, old[0], flipBit(100, 5))

	rr := repairIndex(t, be)
	if rr.Packs != 2 || len(rr.Added) != 2 || len(rr.Removed) != 1 || len(rr.Written) != 1 || len(rr.Warnings) != 1 {
		t.Fatalf("repair report %+v", rr)
	}
	wantClean(t, runCheck(t, be, repo.CheckOptions{ReadData: true}))
	if got, err := b.restoreCopy(t, be); err != nil || string(got) != string(b.data) {
		t.Fatalf("restore after repair: %v", err)
	}
	f, err := repotest.Reopen(t, be).LoadIndexFile(context.Background(), rr.Written[0].String())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Supersedes) != 1 || f.Supersedes[0].String() != old[0].Name {
		t.Fatalf("the new index supersedes %v, want %s", f.Supersedes, old[0].Name)
	}

	// The old file is back, as if the deletion had not happened.
	put(t, be, old[0], oldBytes)
	rep := runCheck(t, be, repo.CheckOptions{})
	if len(rep.Problems) != 0 || len(rep.Warnings) != 1 || rep.Warnings[0].Kind != repo.WarnSupersededIndex {
		t.Fatalf("check with a superseded index: %v %v", rep.Problems, rep.Warnings)
	}
	rr = repairIndex(t, be)
	if len(rr.Removed) != 2 {
		t.Fatalf("second repair removed %v; want the old and the first new file", rr.Removed)
	}
	wantClean(t, runCheck(t, be, repo.CheckOptions{}))
}

// TestRepairIndexBadHeader: a pack whose header is unreadable keeps the
// entries of the old index, so nothing readable is lost.
func TestRepairIndexBadHeader(t *testing.T) {
	b := newTamperBase(t)
	be := clone(t, b.be)
	l := b.dataBlobs[0]
	rewrite(t, be, packHandle(l), flipBit(-10, 0))
	rr := repairIndex(t, be)
	if !slices.Equal(rr.FromOldIndex, []crypt.ID{l.Pack.ID}) || len(rr.Unreadable) != 0 || rr.Packs != 2 {
		t.Fatalf("repair report %+v; want pack %s kept from the old index", rr, l.Pack.ID.Short())
	}
	if got, err := b.restoreCopy(t, be); err != nil || string(got) != string(b.data) {
		t.Fatalf("restore after repair: %v", err)
	}
	wantOne(t, runCheck(t, be, repo.CheckOptions{}), repo.ProblemPackHeader)
}

// TestRepairSnapshots: after a pack is lost, repair index drops it and
// repair snapshots marks exactly the snapshots that needed it broken;
// check is then clean but for warnings, and a new snapshot of the same
// source stores the lost chunks again.
func TestRepairSnapshots(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	d1, d2 := randomData(1, 64<<10), randomData(2, 64<<10)
	a := snap(t, r, "a", d1)
	bs := snap(t, r, "b", d2)
	c := snap(t, r, "c", append(slices.Clone(d1), 1))
	l := dataPackOf(t, r, a)
	oldIndex := map[store.Handle][]byte{}
	for _, h := range handles(t, be, store.IndexFile) {
		oldIndex[h] = read(t, be, h)
	}
	if err := be.Delete(ctx, packHandle(l)); err != nil {
		t.Fatal(err)
	}

	// A dry run changes nothing.
	before := names(t, be, store.SnapshotFile)
	dry, err := repotest.Reopen(t, be).RepairSnapshots(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Marked) != 2 || dry.Marked[0].ID != a.ID || dry.Marked[1].ID != c.ID || !dry.Marked[0].NewID.IsNull() {
		t.Fatalf("dry run marks %+v; want a and c", dry.Marked)
	}
	if !slices.Equal(names(t, be, store.SnapshotFile), before) {
		t.Fatal("a dry run changed snapshot files")
	}

	rs, err := repotest.Reopen(t, be).RepairSnapshots(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Marked) != 2 || len(rs.Problems) != 1 || rs.Problems[0].Kind != repo.ProblemMissingPack {
		t.Fatalf("repair snapshots: %+v", rs)
	}
	list, err := repotest.Reopen(t, be).Snapshots(ctx, repo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var status []string
	for _, s := range list {
		status = append(status, s.Name+":"+s.Status)
		if s.Name == "b" && s.ID != bs.ID {
			t.Error("snapshot b was rewritten")
		}
		if s.Status == repo.StatusBroken && (s.Tree != a.Tree && s.Tree != c.Tree || s.ID == a.ID || s.ID == c.ID) {
			t.Errorf("broken snapshot %+v", s)
		}
	}
	if !slices.Equal(status, []string{"a:broken", "b:", "c:broken"}) {
		t.Fatalf("snapshots %v", status)
	}

	// The index still lists the lost pack: that stays an error (a new
	// snapshot would deduplicate against it) until repair index drops it.
	wantOne(t, runCheck(t, be, repo.CheckOptions{}), repo.ProblemMissingPack)
	rr := repairIndex(t, be)
	if !slices.Equal(rr.Dropped, []crypt.ID{l.Pack.ID}) {
		t.Fatalf("repair index dropped %v, want %s", shorts(rr.Dropped), l.Pack.ID.Short())
	}
	rep := runCheck(t, be, repo.CheckOptions{ReadData: true})
	if len(rep.Problems) != 0 {
		t.Fatalf("check after repair: %d problems", len(rep.Problems))
	}
	if len(rep.Warnings) != 2 || rep.Warnings[0].Kind != repo.WarnBrokenSnapshot || rep.Warnings[1].Kind != repo.WarnBrokenSnapshot ||
		!strings.Contains(rep.Warnings[0].What, "blobs it needs are missing") {
		t.Fatalf("warnings %v; want the two broken snapshots", rep.Warnings)
	}

	// Superseded index files, one of which lists the lost pack, are ignored.
	for h, data := range oldIndex {
		put(t, be, h, data)
	}
	rep = runCheck(t, be, repo.CheckOptions{})
	if len(rep.Problems) != 0 || len(rep.Warnings) != 2+len(oldIndex) {
		t.Fatalf("check with superseded index files: %d problems, %d warnings", len(rep.Problems), len(rep.Warnings))
	}

	// Nothing more to mark; b restores; a new snapshot of a stores the
	// lost chunks again and restores.
	if rs, err := repotest.Reopen(t, be).RepairSnapshots(ctx, false); err != nil || len(rs.Marked) != 0 {
		t.Fatalf("second repair: %+v, %v", rs, err)
	}
	r2 := repotest.Reopen(t, be)
	mustRestore(t, r2, bs, d2)
	a2 := snap(t, r2, "a", d1)
	mustRestore(t, repotest.Reopen(t, be), a2, d1)
}

// TestRepairSnapshotsRefuses: with the index lost, blobs are missing only
// because their packs are not indexed; repair snapshots refuses, so that
// it does not mark good snapshots broken.
func TestRepairSnapshotsRefuses(t *testing.T) {
	b := newTamperBase(t)
	be := clone(t, b.be)
	for _, h := range handles(t, be, store.IndexFile) {
		if err := be.Delete(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	before := names(t, be, store.SnapshotFile)
	_, err := repotest.Reopen(t, be).RepairSnapshots(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "repair index") {
		t.Fatalf("repair snapshots without an index: %v; want a refusal naming repair index", err)
	}
	if !slices.Equal(names(t, be, store.SnapshotFile), before) {
		t.Fatal("snapshot files changed")
	}
}
