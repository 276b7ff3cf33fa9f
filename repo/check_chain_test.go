package repo_test

import (
	"context"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// longChains stores twelve nights in which every chunk changes every night,
// so that delta chains reach the maximum depth and then start again on
// their root: each root carries a tree of deltas.
func longChains(t *testing.T) (store.Backend, []*repo.Snapshot) {
	t.Helper()
	be := mem.New()
	_, snaps, _ := nights(t, be, 12)
	r := repotest.Reopen(t, be)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	deepest, limit := 0, r.Config().Delta.MaxDepth
	for _, d := range newDeltas(t, r, nil) {
		deepest = max(deepest, d)
	}
	if deepest != limit {
		t.Fatalf("setup: deepest chain %d, want the maximum %d", deepest, limit)
	}
	return be, snaps
}

// checkDecodes runs a check on a fresh repository over be and returns its
// report, the decodes of each blob and the index.
func checkDecodes(t *testing.T, be store.Backend, opts repo.CheckOptions) (*repo.CheckReport, map[crypt.ID]int, *index.Index) {
	t.Helper()
	r := repotest.Reopen(t, be)
	rep, counts, err := repo.CheckCountingDecodes(context.Background(), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep, counts, r.Index()
}

// TestCheckDecodesOnce: --read-data decodes every blob exactly once, however
// deep the delta chains, and a subset decodes each blob of its packs once
// and the bases they need from other packs at most once.
func TestCheckDecodesOnce(t *testing.T) {
	be, _ := longChains(t)

	rep, counts, x := checkDecodes(t, be, repo.CheckOptions{ReadData: true})
	wantClean(t, rep)
	blobs, deltas := 0, 0
	x.Each(func(l index.Location) {
		blobs++
		if l.Entry.Enc == pack.DeltaZstd {
			deltas++
		}
		if n := counts[l.Entry.ID]; n != 1 {
			t.Errorf("%s blob %s (%s) decoded %d times, want once", l.Entry.Type, l.Entry.ID.Short(), l.Entry.Enc, n)
		}
	})
	if len(counts) != blobs || rep.BlobsChecked != int64(blobs) {
		t.Errorf("%d blobs decoded, %d checked; the index holds %d", len(counts), rep.BlobsChecked, blobs)
	}
	t.Logf("%d blobs, %d of them deltas, each decoded once", blobs, deltas)

	for _, sub := range []string{"1/3", "2/3", "3/3"} {
		rep, counts, x := checkDecodes(t, be, repo.CheckOptions{Subset: sub})
		wantClean(t, rep)
		inSubset := 0
		x.Each(func(l index.Location) {
			n := counts[l.Entry.ID]
			if n > 1 {
				t.Errorf("subset %s: blob %s decoded %d times", sub, l.Entry.ID.Short(), n)
			}
			if int(l.Pack.ID[0])%3 == int(sub[0]-'1') {
				inSubset++
				if n != 1 {
					t.Errorf("subset %s: blob %s of a pack read decoded %d times", sub, l.Entry.ID.Short(), n)
				}
			}
		})
		if rep.BlobsChecked != int64(inSubset) {
			t.Errorf("subset %s: %d blobs checked, want %d", sub, rep.BlobsChecked, inSubset)
		}
	}
}

// TestCheckSubsetBrokenBase: a subset whose deltas need a base in a pack it
// does not read still decodes that base, and reports it, with every
// snapshot that needs it, when it is corrupt.
func TestCheckSubsetBrokenBase(t *testing.T) {
	orig, snaps := longChains(t)
	r := repotest.Reopen(t, orig)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A delta of the last night whose base lies in a pack of another third.
	var top, base index.Location
	r.Index().Each(func(l index.Location) {
		if l.Entry.Enc != pack.DeltaZstd || !top.Pack.ID.IsNull() {
			return
		}
		b, ok := r.Index().Lookup(l.Entry.Base)
		if ok && b.Entry.Enc == pack.DeltaZstd && l.Pack.ID[0]%3 != b.Pack.ID[0]%3 {
			top, base = l, b
		}
	})
	if top.Pack.ID.IsNull() {
		t.Fatal("setup: no delta with a delta base in a pack of another third")
	}
	be := clone(t, orig)
	rewrite(t, be, packHandle(base), flipBit(int(base.Entry.Offset)+20, 2))

	sub := string(rune('1'+top.Pack.ID[0]%3)) + "/3"
	rep := runCheck(t, be, repo.CheckOptions{Subset: sub})
	p := wantOne(t, rep, repo.ProblemBlob)
	if p.Pack != base.Pack.ID || p.Blob != base.Entry.ID || !p.Lost {
		t.Fatalf("subset %s: problem %s; want the base %s in pack %s", sub, p, base.Entry.ID.Short(), base.Pack.ID.Short())
	}
	var want []*repo.Snapshot
	for _, s := range snaps {
		uses := false
		err := r.SnapshotBlobs(context.Background(), s, func(_ pack.BlobType, id crypt.ID, _ bool) error {
			uses = uses || id == base.Entry.ID
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if uses {
			want = append(want, s)
		}
	}
	wantSnapshots(t, p, want...)

	// Reading every pack names the base as its own pack's fault.
	p = wantOne(t, runCheck(t, be, repo.CheckOptions{ReadData: true}), repo.ProblemBlob)
	if p.Pack != base.Pack.ID || p.Blob != base.Entry.ID {
		t.Fatalf("problem %s; want the base %s", p, base.Entry.ID.Short())
	}
	wantSnapshots(t, p, want...)
}
