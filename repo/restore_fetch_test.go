package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/mem"
)

// TestRestoreCoalescesReads restores a stream of many small blobs and counts
// the ranged reads of packs: blobs that lie together in a pack are fetched
// by one read, not one read each.
func TestRestoreCoalescesReads(t *testing.T) {
	be := mem.New()
	data := randomData(7, 3<<20)
	s := snap(t, initRepo(t, be, smallChunker()), "coalesce", data)
	blobs := len(blobsOf(t, openRepo(t, be), pack.DataBlob))
	packs := len(names(t, be, store.PackFile))

	fb := faulty.New(be)
	r := openRepo(t, fb)
	before := fb.Count(faulty.OpGet, store.PackFile)
	mustRestore(t, r, s, data)
	reads := fb.Count(faulty.OpGet, store.PackFile) - before
	// At most 128 blobs per read, a read never spans two packs, and tree
	// nodes are read on their own.
	if limit := blobs/128 + 2*packs + 4; reads > limit {
		t.Fatalf("restore of %d blobs in %d packs made %d pack reads, want at most %d", blobs, packs, reads, limit)
	}
	t.Logf("%d blobs in %d packs: %d pack reads", blobs, packs, reads)
}

// TestRestoreSmallBudget restores streams and trees while the read-ahead admits
// only a couple of blobs at a time, so the producer blocks on it with a
// batch pending, and trees with more node markers than the order queue
// holds: both must finish and restore every byte.
func TestRestoreSmallBudget(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	data := randomData(9, 1<<20)
	s := snap(t, r, "budget", data)

	m := newMemTree()
	m.dir("d")
	for i := range 3000 {
		var b []byte
		if i%100 == 0 {
			b = randomData(byte(i/100), 9000)
		}
		m.file(fmt.Sprintf("d/f%04d", i), b, 5)
	}
	ts := treeSnap(t, r, m)

	for _, budget := range []int64{0, 8 << 10, 16 << 10} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			r := openRepoWith(t, be, repo.OpenOptions{ReadAhead: budget})
			mustRestore(t, r, s, data)
			nodes, content, err := restoreTree(r, ts, nil)
			if err != nil {
				t.Fatalf("restore tree: %v", err)
			}
			if len(nodes) != len(m.nodes) {
				t.Fatalf("restored %d nodes, want %d", len(nodes), len(m.nodes))
			}
			for path, want := range m.content {
				if !bytes.Equal(content[path], want) {
					t.Fatalf("%s: restored %d bytes that differ from the %d stored", path, len(content[path]), len(want))
				}
			}
		})
	}
}

// TestRestoreBatchReadFails fails the ranged read of a batch: every blob of
// the batch reports the error and restore fails with it.
func TestRestoreBatchReadFails(t *testing.T) {
	be := mem.New()
	data := randomData(11, 1<<20)
	s := snap(t, initRepo(t, be, smallChunker()), "fail", data)
	fb := faulty.New(be, faulty.Fail(nil).On(faulty.OpGet).Types(store.PackFile))
	_, err := restoreErr(openRepo(t, fb), s)
	var be2 *repo.BlobError
	if !errors.As(err, &be2) || !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("restore: got %v, want a blob error wrapping the injected one", err)
	}
}

// TestRestoreTreeSubsetReadsLess restores one file of a tree: the reads
// cover little more than that file's chunks.
func TestRestoreTreeSubsetReadsLess(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	m := newMemTree()
	for i := range 8 {
		m.file(fmt.Sprintf("f%d", i), randomData(byte(20+i), 256<<10), 5)
	}
	ts := treeSnap(t, r, m)
	fb := faulty.New(be)
	r2 := openRepo(t, fb)
	var got []byte
	err := r2.RestoreTree(context.Background(), ts, func(n *repo.Node) bool { return n.Path == "f3" }, true,
		func(n *repo.Node, rd io.Reader) error {
			if rd != nil {
				b, err := io.ReadAll(rd)
				got = b
				return err
			}
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, m.content["f3"]) {
		t.Fatalf("f3: restored %d bytes that differ", len(got))
	}
	if !slices.Contains(m.opened, "f3") {
		t.Fatal("the snapshot never read f3")
	}
}

// openRepo opens the repository in be as a new process would.
func openRepo(t *testing.T, be store.Backend) *repo.Repository {
	t.Helper()
	return openRepoWith(t, be, repo.OpenOptions{})
}

func openRepoWith(t *testing.T, be store.Backend, opts repo.OpenOptions) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, []byte(repotest.Password), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}
