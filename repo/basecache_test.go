package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/mem"
)

// dumpNight returns a dump-like text of rows; rows divisible by every are
// changed with night.
func dumpNight(rows, every, night int) []byte {
	var b bytes.Buffer
	for i := range rows {
		v := i * 7919 % 100003
		if every > 0 && i%every == 0 {
			v += night
		}
		fmt.Fprintf(&b, "%d\tuser%07d\tuser%07d@example.com\t%d.%02d\t2026-11-%02d\n", i, i, i, v, v%100, 1+v%28)
	}
	return b.Bytes()
}

// TestBaseCache proves that with a cache the next night reads its delta
// bases from local disk, not from the repository, and that deleting the
// cache only costs those reads.
func TestBaseCache(t *testing.T) {
	ctx := context.Background()
	night1, night2 := dumpNight(200000, 0, 0), dumpNight(200000, 997, 1)
	run := func(t *testing.T, cacheDir string, dropCache bool) (packGets int, s2 *repo.Snapshot, r *repo.Repository) {
		inner := mem.New()
		cp := &chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: testPol,
			MinSize: chunk.DefaultMinSize, MaxSize: chunk.DefaultMaxSize, AverageBits: chunk.DefaultAverageBits}
		r0, err := repo.Init(ctx, inner, []byte("pw"), repo.InitOptions{KDF: crypt.TestKDF, Chunker: cp})
		if err != nil {
			t.Fatal(err)
		}
		r0.Close()
		fb := faulty.New(inner)
		r, err = repo.Open(ctx, fb, []byte("pw"), repo.OpenOptions{CacheDir: cacheDir, Host: "h"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		opts := repo.SnapshotOptions{Name: "db", Host: "h"}
		if _, err := r.SnapshotStream(ctx, bytes.NewReader(night1), opts); err != nil {
			t.Fatal(err)
		}
		if dropCache {
			if err := os.RemoveAll(cacheDir); err != nil {
				t.Fatal(err)
			}
		}
		before := fb.Count(faulty.OpGet, store.PackFile)
		s2, err = r.SnapshotStream(ctx, bytes.NewReader(night2), opts)
		if err != nil {
			t.Fatal(err)
		}
		if s2.AddedDeltas == 0 {
			t.Fatal("night 2 stored no deltas")
		}
		return fb.Count(faulty.OpGet, store.PackFile) - before, s2, r
	}
	dir := t.TempDir()
	cached, s2, r := run(t, dir, false)
	uncached, _, _ := run(t, "", false)
	dropped, _, _ := run(t, t.TempDir(), true)
	t.Logf("pack reads during night 2: %d with cache, %d without, %d after deleting the cache", cached, uncached, dropped)
	if cached >= uncached || dropped < uncached {
		t.Fatalf("pack reads: cached %d, uncached %d, dropped cache %d", cached, uncached, dropped)
	}
	// Only the previous snapshot's tree blobs are read from packs.
	if int64(cached) > s2.AddedDeltas/2+4 {
		t.Fatalf("%d pack reads with a warm cache for %d deltas", cached, s2.AddedDeltas)
	}
	var out bytes.Buffer
	if err := r.RestoreStream(ctx, s2, &out, nil); err != nil || !bytes.Equal(out.Bytes(), night2) {
		t.Fatalf("restore night 2: %v", err)
	}
}
