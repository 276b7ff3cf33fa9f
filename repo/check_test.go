package repo_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/local"
	"github.com/bk-backup/bk/store/mem"
)

// runCheck checks the repository in be as a new process would.
func runCheck(t *testing.T, be store.Backend, opts repo.CheckOptions) *repo.CheckReport {
	t.Helper()
	rep, err := repotest.Reopen(t, be).Check(context.Background(), opts)
	if err != nil {
		t.Fatalf("check %+v: %v", opts, err)
	}
	for _, p := range rep.Problems {
		t.Logf("error: %s", p)
	}
	for _, w := range rep.Warnings {
		t.Logf("warning: %s", w)
	}
	return rep
}

// wantClean checks that rep has no problems and no warnings.
func wantClean(t *testing.T, rep *repo.CheckReport) {
	t.Helper()
	if len(rep.Problems) != 0 || len(rep.Warnings) != 0 {
		t.Fatalf("check found %d problems and %d warnings, want none", len(rep.Problems), len(rep.Warnings))
	}
}

// wantOne checks that rep has exactly one problem, of kind k, and returns it.
func wantOne(t *testing.T, rep *repo.CheckReport, k repo.ProblemKind) repo.Problem {
	t.Helper()
	if len(rep.Problems) != 1 {
		t.Fatalf("check found %d problems, want exactly one of kind %s", len(rep.Problems), k)
	}
	p := rep.Problems[0]
	if p.Kind != k {
		t.Fatalf("problem of kind %s, want %s: %s", p.Kind, k, p)
	}
	return p
}

// wantSnapshots checks that p names exactly the snapshots want, in order.
func wantSnapshots(t *testing.T, p repo.Problem, want ...*repo.Snapshot) {
	t.Helper()
	var ids []crypt.ID
	for _, s := range want {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(p.Snapshots, ids) {
		t.Fatalf("problem names snapshots %v, want %v", shorts(p.Snapshots), shorts(ids))
	}
}

func shorts(ids []crypt.ID) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.Short())
	}
	return out
}

func TestCheckClean(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	a := randomData(1, 96<<10)
	snap(t, r, "a", a)
	snap(t, r, "b", append(slices.Clone(a[:40<<10]), randomData(2, 50<<10)...))
	snap(t, r, "empty", nil)

	wantClean(t, runCheck(t, be, repo.CheckOptions{}))
	rep := runCheck(t, be, repo.CheckOptions{ReadData: true})
	wantClean(t, rep)
	packs := handles(t, be, store.PackFile)
	var total int64
	for _, h := range packs {
		total += int64(len(read(t, be, h)))
	}
	blobs := 0
	r2 := repotest.Reopen(t, be)
	if err := r2.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	blobs = r2.Index().Len()
	if rep.Snapshots != 3 || rep.Packs != len(packs) || rep.PacksRead != int64(len(packs)) ||
		rep.BlobsChecked != int64(blobs) || rep.BytesRead < total {
		t.Fatalf("report %+v; want 3 snapshots, %d packs read, %d blobs, at least %d bytes", rep, len(packs), blobs, total)
	}
}

// TestCheckFixtureV1 checks the fixture of format version 1 with every byte read.
func TestCheckFixtureV1(t *testing.T) {
	dir, password := copyFixture(t)
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, []byte(password), repo.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, rep)
	if rep.Snapshots != len(fixtureStreams) || rep.PacksRead == 0 {
		t.Fatalf("report %+v", rep)
	}
}

// TestCheckFlippedBlob: a flipped bit inside a blob is invisible to the
// structural check and found by --read-data, which names the pack, the blob
// and the snapshot.
func TestCheckFlippedBlob(t *testing.T) {
	b := newTamperBase(t)
	be := clone(t, b.be)
	l := b.dataBlobs[3]
	rewrite(t, be, packHandle(l), flipBit(int(l.Entry.Offset)+20, 3))

	wantClean(t, runCheck(t, be, repo.CheckOptions{}))
	p := wantOne(t, runCheck(t, be, repo.CheckOptions{ReadData: true}), repo.ProblemBlob)
	if p.Pack != l.Pack.ID || p.Blob != l.Entry.ID || p.Type != "data" || !p.Lost {
		t.Fatalf("problem %+v; want pack %s blob %s, lost", p, l.Pack.ID.Short(), l.Entry.ID.Short())
	}
	wantSnapshots(t, p, b.snap)
	if s := p.String(); !strings.Contains(s, l.Pack.ID.Short()) || !strings.Contains(s, l.Entry.ID.Short()) ||
		!strings.Contains(s, b.snap.ID.Short()) {
		t.Errorf("String() = %q lacks the pack, blob or snapshot", s)
	}
}

// TestCheckFlippedHeader: a flipped bit in a pack header is found by the
// structural check.
func TestCheckFlippedHeader(t *testing.T) {
	b := newTamperBase(t)
	be := clone(t, b.be)
	l := b.dataBlobs[0]
	rewrite(t, be, packHandle(l), flipBit(-10, 0))
	p := wantOne(t, runCheck(t, be, repo.CheckOptions{}), repo.ProblemPackHeader)
	if p.Pack != l.Pack.ID || p.Lost {
		t.Fatalf("problem %+v; want pack %s, not lost", p, l.Pack.ID.Short())
	}
	wantSnapshots(t, p, b.snap)
}

// TestCheckFlippedIndex: a flipped bit in an index file is found by the
// structural check, with the blobs the snapshot then misses.
func TestCheckFlippedIndex(t *testing.T) {
	b := newTamperBase(t)
	be := clone(t, b.be)
	idx := handles(t, be, store.IndexFile)
	if len(idx) != 1 {
		t.Fatalf("%d index files, want 1", len(idx))
	}
	rewrite(t, be, idx[0], flipBit(100, 5))
	rep := runCheck(t, be, repo.CheckOptions{})
	var kinds []repo.ProblemKind
	for _, p := range rep.Problems {
		kinds = append(kinds, p.Kind)
		switch p.Kind {
		case repo.ProblemIndexFile:
			if p.File != "index/"+idx[0].Name {
				t.Errorf("problem names file %q, want index/%s", p.File, idx[0].Name)
			}
		case repo.ProblemMissingBlob:
			if p.Blob != b.snap.Tree {
				t.Errorf("missing blob %s, want the tree %s", p.Blob.Short(), b.snap.Tree.Short())
			}
			wantSnapshots(t, p, b.snap)
		}
	}
	if !slices.Equal(kinds, []repo.ProblemKind{repo.ProblemMissingBlob, repo.ProblemIndexFile}) {
		t.Fatalf("problems of kinds %v", kinds)
	}
	if len(rep.Warnings) != 2 || rep.Warnings[0].Kind != repo.WarnUnreferencedPack {
		t.Fatalf("warnings %v; want the two packs unreferenced", rep.Warnings)
	}
}

// TestCheckTruncatedPack: a truncated pack is found by the structural
// check; the snapshot is named as losing data only when a blob is cut.
func TestCheckTruncatedPack(t *testing.T) {
	b := newTamperBase(t)
	l := b.dataBlobs[len(b.dataBlobs)-1]
	for _, tc := range []struct {
		name string
		keep int
		lost bool
	}{
		{"header cut", -3, false},
		{"last blob cut", int(l.Entry.Offset) + 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, b.be)
			rewrite(t, be, packHandle(l), truncateTo(tc.keep))
			p := wantOne(t, runCheck(t, be, repo.CheckOptions{}), repo.ProblemPackSize)
			if p.Pack != l.Pack.ID || p.Lost != tc.lost {
				t.Fatalf("problem %+v; want pack %s, lost %v", p, l.Pack.ID.Short(), tc.lost)
			}
			wantSnapshots(t, p, b.snap)
		})
	}
}

// TestCheckDeletedPack: a deleted pack is found by the structural check,
// which names exactly the snapshots that need it.
func TestCheckDeletedPack(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	d1, d2 := randomData(1, 64<<10), randomData(2, 64<<10)
	a := snap(t, r, "a", d1)
	snap(t, r, "b", d2)
	c := snap(t, r, "c", append(slices.Clone(d1), 1)) // shares a's data blobs
	l := dataPackOf(t, r, a)

	if err := be.Delete(context.Background(), packHandle(l)); err != nil {
		t.Fatal(err)
	}
	p := wantOne(t, runCheck(t, be, repo.CheckOptions{}), repo.ProblemMissingPack)
	if p.Pack != l.Pack.ID || !p.Lost {
		t.Fatalf("problem %+v; want pack %s, lost", p, l.Pack.ID.Short())
	}
	wantSnapshots(t, p, a, c)
}

// dataPackOf returns the location of the first data blob of s, whose pack
// holds only blobs of s.
func dataPackOf(t *testing.T, r *repo.Repository, s *repo.Snapshot) index.Location {
	t.Helper()
	var first crypt.ID
	err := r.SnapshotBlobs(context.Background(), s, func(bt pack.BlobType, id crypt.ID, _ bool) error {
		if bt == pack.DataBlob && first.IsNull() {
			first = id
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := r.Index().Lookup(first)
	if !ok {
		t.Fatal("first data blob not indexed")
	}
	return l
}

// nights stores n nights of a dump in which a few rows change every night,
// with small chunks, so that each night stores deltas against the last.
func nights(t *testing.T, be store.Backend, n int) (*repo.Repository, []*repo.Snapshot, [][]byte) {
	t.Helper()
	r, err := repo.Init(context.Background(), be, []byte(repotest.Password),
		repo.InitOptions{KDF: crypt.TestKDF, PackSize: 1 << 20, ChunkSize: 64 << 10, Host: "testhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var snaps []*repo.Snapshot
	var data [][]byte
	for night := range n {
		d := dumpNight(20000, 500, night)
		s := snap(t, r, "db", d)
		if night > 0 && s.AddedDeltas == 0 {
			t.Fatalf("night %d stored no deltas", night)
		}
		snaps, data = append(snaps, s), append(data, d)
	}
	return r, snaps, data
}

// TestCheckDeltaBase corrupts a chunk that later nights store deltas
// against: --read-data names that blob and every snapshot whose delta
// chains pass through it, not the deltas above it. The same holds for a
// delta in the middle of a chain.
func TestCheckDeltaBase(t *testing.T) {
	orig := mem.New()
	r, snaps, _ := nights(t, orig, 4)
	wantClean(t, runCheck(t, orig, repo.CheckOptions{ReadData: true}))

	// The chain below a delta of the last night: its links, top first.
	var chain []index.Location
	r.Index().Each(func(l index.Location) {
		if l.Entry.Enc != pack.DeltaZstd || len(chain) > 0 {
			return
		}
		var links []index.Location
		for id := l.Entry.ID; ; {
			bl, _ := r.Index().Lookup(id)
			links = append(links, bl)
			if bl.Entry.Enc != pack.DeltaZstd {
				break
			}
			id = bl.Entry.Base
		}
		if len(links) == len(snaps) {
			chain = links
		}
	})
	if len(chain) == 0 {
		t.Fatal("no delta chain through every night")
	}
	for _, tc := range []struct {
		name string
		blob index.Location
	}{
		{"whole base", chain[len(chain)-1]},
		{"middle delta", chain[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []*repo.Snapshot
			for _, s := range snaps {
				uses := false
				err := r.SnapshotBlobs(context.Background(), s, func(_ pack.BlobType, id crypt.ID, _ bool) error {
					uses = uses || id == tc.blob.Entry.ID
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if uses {
					want = append(want, s)
				}
			}
			if len(want) < 2 {
				t.Fatalf("%d snapshots pass through the blob; want a longer chain", len(want))
			}
			be := clone(t, orig)
			rewrite(t, be, packHandle(tc.blob), flipBit(int(tc.blob.Entry.Offset)+30, 1))

			wantClean(t, runCheck(t, be, repo.CheckOptions{}))
			p := wantOne(t, runCheck(t, be, repo.CheckOptions{ReadData: true}), repo.ProblemBlob)
			if p.Pack != tc.blob.Pack.ID || p.Blob != tc.blob.Entry.ID || !p.Lost {
				t.Fatalf("problem %+v; want blob %s in pack %s", p, tc.blob.Entry.ID.Short(), tc.blob.Pack.ID.Short())
			}
			wantSnapshots(t, p, want...)
		})
	}
}

// getCounter counts the reads of each file.
type getCounter struct {
	store.Backend
	mu    sync.Mutex
	gets  map[string]int
	whole []string // files read whole, in order
}

func (g *getCounter) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	g.mu.Lock()
	g.gets[h.Name]++
	if h.Type == store.PackFile && off == 0 && length == 0 {
		g.whole = append(g.whole, h.Name)
	}
	g.mu.Unlock()
	return g.Backend.Get(ctx, h, off, length, fn)
}

// TestCheckFlakyRead flips a bit in one read of one pack, for every read
// --read-data makes of it (tree loads, header reads, the pack itself): each
// is reported as a flaky read, never as corruption.
func TestCheckFlakyRead(t *testing.T) {
	b := newTamperBase(t)
	gc := &getCounter{Backend: b.be, gets: map[string]int{}}
	wantClean(t, runCheck(t, gc, repo.CheckOptions{ReadData: true}))
	for _, l := range []index.Location{b.dataBlobs[0], b.treeBlobs[0]} {
		name := l.Pack.ID.String()
		if gc.gets[name] < 2 {
			t.Fatalf("pack %s read %d times", name[:8], gc.gets[name])
		}
		for n := 1; n <= gc.gets[name]; n++ {
			fb := faulty.New(b.be, faulty.FlipBit(-1).On(faulty.OpGet).Names(name).Nth(n))
			rep := runCheck(t, fb, repo.CheckOptions{ReadData: true})
			if u := fb.Unfired(); len(u) != 0 {
				t.Fatalf("fault %v did not fire", u)
			}
			if len(rep.Problems) != 0 || len(rep.Warnings) != 1 {
				t.Fatalf("read %d of pack %s corrupt: %d problems, %d warnings; want one warning",
					n, name[:8], len(rep.Problems), len(rep.Warnings))
			}
			if w := rep.Warnings[0]; w.Kind != repo.WarnFlakyRead || w.Pack != l.Pack.ID {
				t.Fatalf("warning %s; want a flaky read of pack %s", w, name[:8])
			}
		}
	}
}

// TestCheckSubsets: the N/M slices of M runs read every pack exactly once;
// a percentage reads a reproducible sample.
func TestCheckSubsets(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	snap(t, r, "big", randomData(1, 7<<20))
	packs := names(t, be, store.PackFile)
	if len(packs) < 6 {
		t.Fatalf("%d packs; want several", len(packs))
	}
	read := func(opts repo.CheckOptions) ([]string, *repo.CheckReport) {
		gc := &getCounter{Backend: be, gets: map[string]int{}}
		rep := runCheck(t, gc, opts)
		wantClean(t, rep)
		if rep.PacksRead != int64(len(gc.whole)) {
			t.Fatalf("report says %d packs read, %d were", rep.PacksRead, len(gc.whole))
		}
		return gc.whole, rep
	}
	const m = 4
	var all []string
	for n := 1; n <= m; n++ {
		got, _ := read(repo.CheckOptions{Subset: strings.Join([]string{string(rune('0' + n)), string(rune('0' + m))}, "/")})
		all = append(all, got...)
	}
	slices.Sort(all)
	if !slices.Equal(all, packs) {
		t.Fatalf("%d runs of 1/%d..%d/%d read %d packs, want each of the %d once", m, m, m, m, len(all), len(packs))
	}

	half, rep := read(repo.CheckOptions{Subset: "50%", Seed: 7})
	if len(half) != (len(packs)+1)/2 || rep.Seed != 7 {
		t.Fatalf("50%% of %d packs read %d (seed %d)", len(packs), len(half), rep.Seed)
	}
	again, _ := read(repo.CheckOptions{Subset: "50%", Seed: 7})
	if !slices.Equal(half, again) {
		t.Fatal("the same seed sampled other packs")
	}
	if _, rep := read(repo.CheckOptions{Subset: "100%"}); rep.PacksRead != int64(len(packs)) || rep.Seed == 0 {
		t.Fatalf("100%%: %d packs read, seed %d", rep.PacksRead, rep.Seed)
	}

	for _, bad := range []string{"0/3", "4/3", "1/0", "1/257", "x", "0%", "101%", "1/2/3", "%"} {
		if repo.ValidSubset(bad) == nil {
			t.Errorf("subset %q accepted", bad)
		}
		if _, err := r.Check(context.Background(), repo.CheckOptions{Subset: bad}); err == nil {
			t.Errorf("check with subset %q succeeded", bad)
		}
	}
}

// TestCheckSnapshot: --snapshot reads only what that snapshot needs.
func TestCheckSnapshot(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	a := snap(t, r, "a", randomData(1, 64<<10))
	bs := snap(t, r, "b", randomData(2, 64<<10))
	l := dataPackOf(t, r, bs)
	rewrite(t, be, packHandle(l), flipBit(int(l.Entry.Offset)+20, 0))

	rep := runCheck(t, be, repo.CheckOptions{ReadData: true, Snapshot: a.ID.Short()})
	wantClean(t, rep)
	if rep.Snapshots != 1 || rep.PacksRead != 2 {
		t.Fatalf("check of snapshot a: %+v; want 1 snapshot and its 2 packs read", rep)
	}
	p := wantOne(t, runCheck(t, be, repo.CheckOptions{ReadData: true, Snapshot: "latest"}), repo.ProblemBlob)
	if p.Pack != l.Pack.ID {
		t.Fatalf("problem %s; want pack %s", p, l.Pack.ID.Short())
	}
	wantSnapshots(t, p, bs)
}

// TestCheckReadsOncePerPack: a clean --read-data downloads each pack whole
// exactly once.
func TestCheckReadsOncePerPack(t *testing.T) {
	b := newTamperBase(t)
	gc := &getCounter{Backend: b.be, gets: map[string]int{}}
	wantClean(t, runCheck(t, gc, repo.CheckOptions{ReadData: true}))
	for _, h := range handles(t, b.be, store.PackFile) {
		whole := 0
		for _, n := range gc.whole {
			if n == h.Name {
				whole++
			}
		}
		if whole != 1 {
			t.Errorf("pack %s read whole %d times", h.Name[:8], whole)
		}
	}
}

// TestCheckDuringSnapshots: snapshots written while check runs (both hold
// shared locks) never make it report a problem.
func TestCheckDuringSnapshots(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	snap(t, r, "first", randomData(1, 32<<10))
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := repotest.Reopen(t, be)
		for i := range 20 {
			if _, err := w.SnapshotStream(context.Background(), bytes.NewReader(randomData(byte(i+2), 32<<10)),
				repo.SnapshotOptions{Name: "busy", Host: "h"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for checks := 0; ; checks++ {
		select {
		case <-done:
			if checks == 0 {
				t.Log("the snapshots finished before the first check")
			}
			wantClean(t, runCheck(t, be, repo.CheckOptions{ReadData: true}))
			return
		default:
		}
		if rep := runCheck(t, be, repo.CheckOptions{}); len(rep.Problems) != 0 {
			t.Fatalf("check during snapshots found %d problems", len(rep.Problems))
		}
	}
}
