package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/mem"
)

// sweepBase is a repository with 1 MiB packs and two earlier snapshots, and
// the data of a new multi-pack snapshot to write into copies of it.
type sweepBase struct {
	be      *mem.Backend
	earlier map[crypt.ID][]byte // snapshot ID → content
	next    []byte
}

func newSweepBase(t *testing.T) *sweepBase {
	t.Helper()
	b := &sweepBase{be: mem.New(), earlier: map[crypt.ID][]byte{}, next: randomData(3, 8<<20)}
	r := initRepo(t, b.be, &chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: testPol,
		MinSize: chunk.DefaultMinSize, MaxSize: chunk.DefaultMaxSize, AverageBits: chunk.DefaultAverageBits})
	for i, data := range [][]byte{randomData(1, 2<<20), textData(2, 3<<20)} {
		s := snap(t, r, fmt.Sprint("earlier", i), data)
		b.earlier[s.ID] = data
	}
	return b
}

// open opens the repository in be. One worker puts the chunks into packs in
// stream order, so every run of a snapshot makes the same packs and the
// same number of backend operations.
func (b *sweepBase) open(t *testing.T, be store.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, []byte(repotest.Password), repo.OpenOptions{Workers: 1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// check verifies a backend after a failed snapshot of b.next: every earlier
// snapshot restores byte-identical in a new process, and the only other
// snapshot there may be is a complete one of b.next.
func (b *sweepBase) check(t *testing.T, be store.Backend, newAllowed bool) {
	t.Helper()
	r := b.open(t, be)
	list, err := r.Snapshots(context.Background(), repo.Filter{})
	if err != nil {
		t.Fatalf("list snapshots: %v", err)
	}
	for _, s := range list {
		want, ok := b.earlier[s.ID]
		if !ok {
			if !newAllowed {
				t.Fatalf("the failed snapshot left snapshot %s", s.ID.Short())
			}
			want = b.next
		}
		mustRestore(t, r, s, want)
	}
	if n := len(list) - len(b.earlier); n < 0 || n > 1 {
		t.Fatalf("%d snapshots, want %d or %d", len(list), len(b.earlier), len(b.earlier)+1)
	}
}

// countOps returns how many operations in ops opening the repository and
// then writing a snapshot of b.next take.
func (b *sweepBase) countOps(t *testing.T, ops faulty.Op) (open, snapshot int) {
	t.Helper()
	fb := faulty.New(clone(t, b.be))
	r := b.open(t, fb)
	open = fb.Count(ops)
	snap(t, r, "next", b.next)
	return open, fb.Count(ops) - open
}

// TestFaultySweep fails each backend operation of a snapshot in turn: the
// writes, the writes with the error reported after they took effect (a lost
// reply), and the reads. Each time the snapshot must report the injected
// error, leave no snapshot behind (or, when only the reply of the snapshot
// write was lost, a complete one), keep every earlier snapshot restorable,
// and let the same Repository write a correct snapshot next.
func TestFaultySweep(t *testing.T) {
	base := newSweepBase(t)
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		ops  faulty.Op
		late bool
	}{
		{"writes", faulty.Writes, false},
		{"late writes", faulty.Writes, true},
		{"reads", faulty.Reads, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			openOps, count := base.countOps(t, mode.ops)
			t.Logf("a snapshot of %d bytes takes %d operations on %v", len(base.next), count, mode.ops)
			if mode.ops == faulty.Writes && count < 6 {
				t.Fatalf("only %d writes: the snapshot should span several packs", count)
			}
			for n := 1; n <= count; n++ {
				t.Run(fmt.Sprint(n), func(t *testing.T) {
					be := clone(t, base.be)
					f := faulty.Fail(nil).On(mode.ops).Nth(openOps + n)
					if mode.late {
						f = f.Late()
					}
					fb := faulty.New(be, f)
					r := base.open(t, fb)
					_, err := r.SnapshotStream(ctx, bytes.NewReader(base.next), repo.SnapshotOptions{Name: "next"})
					if u := fb.Unfired(); len(u) > 0 {
						t.Fatalf("fault %v never fired", u[0])
					}
					if !errors.Is(err, faulty.ErrInjected) {
						t.Fatalf("snapshot: got %v, want the injected error", err)
					}
					base.check(t, be, mode.late)

					// The same process tries again and succeeds.
					s, err := r.SnapshotStream(ctx, bytes.NewReader(base.next), repo.SnapshotOptions{Name: "next"})
					if err != nil {
						t.Fatalf("snapshot after the failure: %v", err)
					}
					mustRestore(t, base.open(t, be), s, base.next)
				})
			}
		})
	}
}

// TestFaultyRestoreSweep fails each read of a restore in turn: restore must
// report the injected error and write no more than a prefix of the stream.
func TestFaultyRestoreSweep(t *testing.T) {
	base := newSweepBase(t)
	var s *repo.Snapshot
	var want []byte
	for id, data := range base.earlier {
		if s == nil || len(data) > len(want) {
			s, want = &repo.Snapshot{ID: id}, data
		}
	}
	s, err := base.open(t, base.be).LoadSnapshot(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	fb := faulty.New(base.be)
	r := base.open(t, fb)
	openOps := fb.Count(faulty.Reads)
	mustRestore(t, r, s, want)
	count := fb.Count(faulty.Reads) - openOps
	for n := 1; n <= count; n++ {
		fb := faulty.New(base.be, faulty.Fail(nil).On(faulty.Reads).Nth(openOps+n))
		r := base.open(t, fb)
		got, err := restoreErr(r, s)
		if !errors.Is(err, faulty.ErrInjected) {
			t.Fatalf("read %d of %d failed: restore returned %v, want the injected error", n, count, err)
		}
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("read %d of %d failed: restore wrote bytes that are not a prefix of the stream", n, count)
		}
	}
}

// TestFaultyENOSPC fills the disk during each kind of write: the snapshot
// must fail with an error matching syscall.ENOSPC, and nothing is recorded.
func TestFaultyENOSPC(t *testing.T) {
	base := newSweepBase(t)
	for _, ft := range []store.FileType{store.PackFile, store.IndexFile, store.SnapshotFile} {
		t.Run(string(ft), func(t *testing.T) {
			be := clone(t, base.be)
			fb := faulty.New(be, faulty.Fail(syscall.ENOSPC).On(faulty.OpPut).Types(ft).From(1))
			r := base.open(t, fb)
			_, err := r.SnapshotStream(context.Background(), bytes.NewReader(base.next), repo.SnapshotOptions{Name: "next"})
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("got %v, want ENOSPC", err)
			}
			if len(fb.Unfired()) > 0 {
				t.Fatal("the fault never fired")
			}
			base.check(t, be, false)
		})
	}
}

// TestFaultyBitFlip corrupts pack data as it is written and as it is read
// back: restore must fail as corruption naming the pack, or (for a bit in
// the pack's header or trailer, which restore does not read) restore
// correctly; it never returns wrong bytes.
func TestFaultyBitFlip(t *testing.T) {
	base := newSweepBase(t)
	for _, tc := range []struct {
		name  string
		fault faulty.Fault
	}{
		{"on put, first blob", faulty.FlipBit(8 * (pack.PreambleSize + 100)).On(faulty.OpPut).Types(store.PackFile).Nth(1)},
		{"on put, last pack", faulty.FlipBit(8 * (pack.PreambleSize + 5000)).On(faulty.OpPut).Types(store.PackFile).From(1)},
		{"on get, first read", faulty.FlipBit(3).On(faulty.OpGet).Types(store.PackFile).Nth(1)},
		{"on get, fifth read", faulty.FlipBit(12345).On(faulty.OpGet).Types(store.PackFile).Nth(5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			fb := faulty.New(be, tc.fault)
			s := snap(t, base.open(t, fb), "next", base.next)
			got, err := restoreErr(base.open(t, fb), s)
			if len(fb.Unfired()) > 0 {
				t.Fatal("the fault never fired")
			}
			var blobErr *repo.BlobError
			switch {
			case err == nil:
				if !bytes.Equal(got, base.next) {
					t.Fatal("restore succeeded with wrong bytes")
				}
				t.Log("the flipped bit was outside every blob restore reads")
			case !errors.Is(err, repo.ErrCorrupt) || !errors.As(err, &blobErr):
				t.Fatalf("restore: got %v, want a *repo.BlobError matching repo.ErrCorrupt", err)
			}
		})
	}
}
