package repo_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/delta"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// chainBase is a repository with three nights of a table in which one hot
// row changes every night: night 3 stores the hot chunk as a delta D whose
// base B is night 2's delta, itself against night 1's chunk C stored whole.
// Night 1 does not depend on B. Each test case damages a copy of it.
type chainBase struct {
	be      store.Backend
	table   *dumpTable
	hot     int
	snaps   []*repo.Snapshot
	datas   [][]byte
	d, b, c index.Location
}

func newChainBase(t testing.TB) *chainBase {
	t.Helper()
	cb := &chainBase{be: mem.New(), table: newDumpTable(5, 1<<20)}
	r := initDeltaRepo(t, cb.be, repo.InitOptions{Chunker: deltaChunker()})
	cb.hot = len(cb.table.rows) / 2
	var added []map[crypt.ID]int
	for n := 1; n <= 3; n++ {
		if n > 1 {
			cb.table.update(cb.hot)
		}
		data := cb.table.bytes()
		before := indexed(t, r)
		s := night(t, r, data, repo.SnapshotOptions{})
		cb.snaps, cb.datas = append(cb.snaps, s), append(cb.datas, data)
		added = append(added, newDeltas(t, r, before))
	}
	if len(added[1]) != 1 || len(added[2]) != 1 {
		t.Fatalf("setup: nights 2 and 3 added %d and %d deltas, want one each", len(added[1]), len(added[2]))
	}
	lookup := func(id crypt.ID) index.Location {
		l, ok := r.Index().Lookup(id)
		if !ok {
			t.Fatalf("setup: blob %s not indexed", id.Short())
		}
		return l
	}
	for id := range added[2] {
		cb.d = lookup(id)
	}
	cb.b = lookup(cb.d.Entry.Base)
	if _, ok := added[1][cb.b.Entry.ID]; !ok || cb.b.Entry.Enc != pack.DeltaZstd {
		t.Fatal("setup: night 3's delta is not based on night 2's")
	}
	cb.c = lookup(cb.b.Entry.Base)
	if cb.c.Entry.Enc == pack.DeltaZstd || cb.b.Pack.ID == cb.d.Pack.ID || cb.c.Pack.ID == cb.b.Pack.ID {
		t.Fatal("setup: want C stored whole, and C, B and D in three packs")
	}
	return cb
}

// restore restores night n (1-based) from be as a new process would.
func (cb *chainBase) restore(t testing.TB, be store.Backend, n int) ([]byte, error) {
	t.Helper()
	return restoreErr(repotest.Reopen(t, be), cb.snaps[n-1])
}

// mustRestore checks that night n restores from be.
func (cb *chainBase) mustRestore(t testing.TB, be store.Backend, n int) {
	t.Helper()
	mustRestore(t, repotest.Reopen(t, be), cb.snaps[n-1], cb.datas[n-1])
}

// nextNight snapshots night 4 (the hot row changes again) on be and checks
// that it restores: a writer whose delta base cannot be read stores the
// chunk whole instead of failing.
func (cb *chainBase) nextNight(t testing.TB, be store.Backend) {
	t.Helper()
	tb := cb.table.clone()
	tb.update(cb.hot)
	data := tb.bytes()
	r := repotest.Reopen(t, be)
	s := night(t, r, data, repo.SnapshotOptions{})
	t.Logf("night 4 on the damaged repository: %d deltas", s.AddedDeltas)
	mustRestore(t, repotest.Reopen(t, be), s, data)
}

// forgeIndex rewrites, sealed with the repository's key, every index file
// for which fn reports a change, as a writer with the key (a buggy bk)
// could.
func forgeIndex(t testing.TB, be store.Backend, fn func(f *index.File) bool) {
	t.Helper()
	ctx := context.Background()
	r := repotest.Reopen(t, be)
	mk := masterKey(t, be)
	changed := 0
	for _, h := range handles(t, be, store.IndexFile) {
		f, err := r.LoadIndexFile(ctx, h.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !fn(f) {
			continue
		}
		sealed, err := mk.SealFile("index", append([]byte{0}, index.Encode(f)...))
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Delete(ctx, h); err != nil {
			t.Fatal(err)
		}
		put(t, be, store.Handle{Type: store.IndexFile, Name: crypt.Hash(sealed).String()}, sealed)
		changed++
	}
	if changed == 0 {
		t.Fatal("forgeIndex changed no index file")
	}
}

// dropEntry removes the entry of blob id from f.
func dropEntry(f *index.File, id crypt.ID) bool {
	for i := range f.Packs {
		blobs := f.Packs[i].Blobs
		if j := slices.IndexFunc(blobs, func(e pack.Entry) bool { return e.ID == id }); j >= 0 {
			f.Packs[i].Blobs = slices.Delete(blobs, j, j+1)
			return true
		}
	}
	return false
}

// plantBlob stores a pack, sealed with the repository's key, holding one
// raw data blob that claims the ID id but holds plain, and moves id's index
// entry there. Every MAC verifies; only the content hash is wrong.
func plantBlob(t testing.TB, be store.Backend, id crypt.ID, plain []byte) crypt.ID {
	t.Helper()
	return plantEncoded(t, be, pack.Raw, id, crypt.ID{}, plain, len(plain))
}

// plantEncoded is plantBlob for an encoded blob of rawLen bytes.
func plantEncoded(t testing.TB, be store.Backend, enc pack.Encoding, id, base crypt.ID, stored []byte, rawLen int) crypt.ID {
	t.Helper()
	w, err := pack.NewWriter(masterKey(t, be), len(stored))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(pack.DataBlob, enc, id, base, stored, rawLen); err != nil {
		t.Fatal(err)
	}
	data, entries, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	packID := crypt.Hash(data)
	put(t, be, store.Handle{Type: store.PackFile, Name: packID.String()}, data)
	forgeIndex(t, be, func(f *index.File) bool {
		if !dropEntry(f, id) {
			return false
		}
		f.Packs = append(f.Packs, index.PackBlobs{ID: packID, Salt: w.Salt(), Size: int64(len(data)), Blobs: entries})
		return true
	})
	return packID
}

// loadPlain returns the plaintext of data blob id.
func loadPlain(t testing.TB, be store.Backend, id crypt.ID) []byte {
	t.Helper()
	ctx := context.Background()
	r := repotest.Reopen(t, be)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	plain, err := r.LoadBlob(ctx, pack.DataBlob, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// TestDeltaCorruptBase damages the base of a delta chain in several ways.
// Restoring a night that depends on it must fail as corruption naming the
// blob that is actually wrong, never return wrong bytes; a night that does
// not depend on it still restores; and the next night can still be written.
func TestDeltaCorruptBase(t *testing.T) {
	cb := newChainBase(t)
	d, b, c := cb.d, cb.b, cb.c
	t.Logf("chain: D %s (pack %s) -> B %s (pack %s) -> C %s (pack %s)", d.Entry.ID.Short(), d.Pack.ID.Short(),
		b.Entry.ID.Short(), b.Pack.ID.Short(), c.Entry.ID.Short(), c.Pack.ID.Short())
	for n := 1; n <= 3; n++ {
		cb.mustRestore(t, cb.be, n)
	}

	t.Run("bit flip in the base", func(t *testing.T) {
		for _, pos := range []int64{0, b.Entry.Length / 2, b.Entry.Length - 1} {
			be := clone(t, cb.be)
			rewrite(t, be, packHandle(b), flipBit(int(b.Entry.Offset+pos), 3))
			_, err := cb.restore(t, be, 3)
			wantBlobError(t, err, b.Pack.ID, b.Entry.ID) // the base, not D
			if !errors.Is(err, crypt.ErrAuth) {
				t.Errorf("error %q does not match crypt.ErrAuth", err)
			}
			if !strings.Contains(err.Error(), d.Entry.ID.Short()) {
				t.Errorf("error %q does not mention the delta %s that needed the base", err, d.Entry.ID.Short())
			}
			_, err = cb.restore(t, be, 2)
			wantBlobError(t, err, b.Pack.ID, b.Entry.ID)
			cb.mustRestore(t, be, 1)
			cb.nextNight(t, be)
		}
	})

	t.Run("bit flip in the root", func(t *testing.T) {
		be := clone(t, cb.be)
		rewrite(t, be, packHandle(c), flipBit(int(c.Entry.Offset+c.Entry.Length/3), 0))
		for n := 1; n <= 3; n++ {
			_, err := cb.restore(t, be, n)
			wantBlobError(t, err, c.Pack.ID, c.Entry.ID)
		}
	})

	t.Run("base missing from the index", func(t *testing.T) {
		be := clone(t, cb.be)
		forgeIndex(t, be, func(f *index.File) bool { return dropEntry(f, b.Entry.ID) })
		_, err := cb.restore(t, be, 3)
		wantBlobError(t, err, d.Pack.ID, d.Entry.ID) // the delta that cannot be decoded
		if !strings.Contains(err.Error(), b.Entry.ID.String()) {
			t.Errorf("error %q does not name the missing base %s", err, b.Entry.ID.Short())
		}
		cb.mustRestore(t, be, 1)
		cb.nextNight(t, be)
	})

	// A base whose every MAC verifies but whose content is wrong, as only a
	// writer holding the key could store: the chain is decoded verifying
	// only the final content, which fails; the verifying re-decode must
	// then name the base.
	t.Run("wrong base content, same length", func(t *testing.T) {
		be := clone(t, cb.be)
		plain := loadPlain(t, be, b.Entry.ID)
		for i := range plain {
			plain[i] ^= 0x20
		}
		planted := plantBlob(t, be, b.Entry.ID, plain)
		got, err := cb.restore(t, be, 3)
		wantBlobError(t, err, planted, b.Entry.ID)
		if errors.Is(err, crypt.ErrAuth) {
			t.Errorf("error %q matches crypt.ErrAuth, but every MAC verifies", err)
		}
		if bytes.Equal(got, cb.datas[2]) {
			t.Error("a failed restore wrote the whole stream")
		}
		cb.mustRestore(t, be, 1)
	})
	t.Run("wrong base content, shorter", func(t *testing.T) {
		be := clone(t, cb.be)
		plain := loadPlain(t, be, b.Entry.ID)
		planted := plantBlob(t, be, b.Entry.ID, plain[:len(plain)/2])
		_, err := cb.restore(t, be, 3)
		wantBlobError(t, err, planted, b.Entry.ID)
		cb.mustRestore(t, be, 1)
	})

	// A delta whose program does not apply to its (good) base: the
	// verifying re-decode finds the base intact and names the delta.
	t.Run("delta program out of its base", func(t *testing.T) {
		be := clone(t, cb.be)
		prog := binary.AppendUvarint([]byte{delta.Version}, uint64(d.Entry.RawLength))
		prog = binary.AppendUvarint(prog, uint64(d.Entry.RawLength)<<1|1)
		prog = binary.AppendUvarint(prog, 1<<30) // copy from far past the base
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		planted := plantEncoded(t, be, pack.DeltaZstd, d.Entry.ID, d.Entry.Base, enc.EncodeAll(prog, nil), int(d.Entry.RawLength))
		_, err = cb.restore(t, be, 3)
		wantBlobError(t, err, planted, d.Entry.ID)
		if !errors.Is(err, delta.ErrCorrupt) {
			t.Errorf("error %q does not match delta.ErrCorrupt", err)
		}
		cb.mustRestore(t, be, 2)
	})

	// The base ID is bound to the sealed delta, so pointing a delta at
	// another base fails authentication; pointing B at itself makes a
	// cycle, which the reader must cut off.
	t.Run("swapped bases", func(t *testing.T) {
		be := clone(t, cb.be)
		bases := map[crypt.ID]crypt.ID{d.Entry.ID: b.Entry.Base, b.Entry.ID: d.Entry.Base}
		forgeIndex(t, be, func(f *index.File) bool {
			changed := false
			for i := range f.Packs {
				for j := range f.Packs[i].Blobs {
					e := &f.Packs[i].Blobs[j]
					if nb, ok := bases[e.ID]; ok {
						e.Base, changed = nb, true
					}
				}
			}
			return changed
		})
		_, err := cb.restore(t, be, 3)
		wantBlobError(t, err, d.Pack.ID, d.Entry.ID)
		if !errors.Is(err, crypt.ErrAuth) {
			t.Errorf("error %q does not match crypt.ErrAuth", err)
		}
		_, err = cb.restore(t, be, 2)
		wantBlobError(t, err, b.Pack.ID, b.Entry.ID)
		cb.mustRestore(t, be, 1)
		cb.nextNight(t, be)
	})
}
