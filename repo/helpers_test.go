package repo_test

import (
	"bytes"
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/restic/chunker"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// testPol is a fixed irreducible polynomial of degree 53.
const testPol = chunker.Pol(0x3DA3358B4DC173)

// smallChunker cuts random data into chunks of exactly 4 KiB (the average is
// far above the maximum), so a small stream has many blobs of one length.
func smallChunker() *chunk.Params {
	return &chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: testPol,
		MinSize: 1 << 10, MaxSize: 4 << 10, AverageBits: 20}
}

// initRepo creates a repository on be with cheap KDF parameters, the
// smallest pack size and the given chunker (nil: random default parameters).
func initRepo(t testing.TB, be store.Backend, cp *chunk.Params) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), be, []byte(repotest.Password),
		repo.InitOptions{KDF: crypt.TestKDF, PackSize: 1 << 20, Chunker: cp, Host: "testhost"})
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// randomData returns n incompressible bytes from ChaCha8 seeded with seed.
func randomData(seed byte, n int) []byte {
	var s [32]byte
	s[0] = seed
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// snap stores data as a snapshot called name.
func snap(t testing.TB, r *repo.Repository, name string, data []byte) *repo.Snapshot {
	t.Helper()
	s, err := r.SnapshotStream(context.Background(), bytes.NewReader(data),
		repo.SnapshotOptions{Name: name, Host: "h", AllowEmpty: true})
	if err != nil {
		t.Fatalf("snapshot %q of %d bytes: %v", name, len(data), err)
	}
	return s
}

// restoreErr restores s and returns the bytes and the error.
func restoreErr(r *repo.Repository, s *repo.Snapshot) ([]byte, error) {
	var out bytes.Buffer
	err := r.RestoreStream(context.Background(), s, &out, nil)
	return out.Bytes(), err
}

// mustRestore restores s and checks it equals want.
func mustRestore(t testing.TB, r *repo.Repository, s *repo.Snapshot, want []byte) {
	t.Helper()
	got, err := restoreErr(r, s)
	if err != nil {
		t.Fatalf("restore snapshot %s: %v", s.ID.Short(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("restore snapshot %s: got %d bytes that differ from the %d stored", s.ID.Short(), len(got), len(want))
	}
}

// names returns the sorted names of the files of type ft.
func names(t testing.TB, be store.Backend, ft store.FileType) []string {
	t.Helper()
	var out []string
	err := be.List(context.Background(), ft, func(fi store.FileInfo) error {
		out = append(out, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", ft, err)
	}
	return out
}

// handles returns a handle for every stored file of type ft.
func handles(t testing.TB, be store.Backend, ft store.FileType) []store.Handle {
	t.Helper()
	var hs []store.Handle
	for _, n := range names(t, be, ft) {
		hs = append(hs, store.Handle{Type: ft, Name: n})
	}
	return hs
}

// read returns the stored bytes of h.
func read(t testing.TB, be store.Backend, h store.Handle) []byte {
	t.Helper()
	b, err := store.ReadAll(context.Background(), be, h)
	if err != nil {
		t.Fatalf("read %s: %v", h, err)
	}
	return b
}

// put stores data as h.
func put(t testing.TB, be store.Backend, h store.Handle, data []byte) {
	t.Helper()
	if err := be.Put(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", h, err)
	}
}

// rewrite replaces the bytes of h by fn(old bytes) under the same name, as
// bit rot or a broken disk would. Names are content hashes, so the result no
// longer matches its name.
func rewrite(t testing.TB, be store.Backend, h store.Handle, fn func([]byte) []byte) {
	t.Helper()
	data := fn(read(t, be, h))
	if err := be.Delete(context.Background(), h); err != nil {
		t.Fatalf("delete %s: %v", h, err)
	}
	put(t, be, h, data)
}

// rename replaces h by fn(old bytes) stored under the hash of the new bytes,
// as a consistent forger without the key would, and returns the new handle.
// The config keeps its (empty) name.
func rename(t testing.TB, be store.Backend, h store.Handle, fn func([]byte) []byte) store.Handle {
	t.Helper()
	data := fn(read(t, be, h))
	if err := be.Delete(context.Background(), h); err != nil {
		t.Fatalf("delete %s: %v", h, err)
	}
	nh := h
	if h.Type != store.ConfigFile {
		nh.Name = crypt.Hash(data).String()
	}
	put(t, be, nh, data)
	return nh
}

// flipBit returns a mutation that inverts bit (bit&7) of byte pos; a negative
// pos counts from the end.
func flipBit(pos, bit int) func([]byte) []byte {
	return func(b []byte) []byte {
		i := pos
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 1 << (bit & 7)
		return b
	}
}

// truncateTo returns a mutation that keeps the first n bytes; a negative n
// drops -n bytes from the end.
func truncateTo(n int) func([]byte) []byte {
	return func(b []byte) []byte {
		if n < 0 {
			return b[:len(b)+n]
		}
		return b[:n]
	}
}

// clone copies every file of src into a new mem backend.
func clone(t testing.TB, src store.Backend) *mem.Backend {
	t.Helper()
	dst := mem.New()
	for _, ft := range store.AllTypes {
		if ft == store.ConfigFile {
			put(t, dst, store.Handle{Type: ft}, read(t, src, store.Handle{Type: ft}))
			continue
		}
		for _, h := range handles(t, src, ft) {
			put(t, dst, h, read(t, src, h))
		}
	}
	return dst
}

// blobsOf returns the indexed locations of the blobs of type bt, ordered by
// pack and offset.
func blobsOf(t testing.TB, r *repo.Repository, bt pack.BlobType) []index.Location {
	t.Helper()
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []index.Location
	r.Index().Each(func(l index.Location) {
		if l.Entry.Type == bt {
			out = append(out, l)
		}
	})
	slices.SortFunc(out, func(a, b index.Location) int {
		if c := bytes.Compare(a.Pack.ID[:], b.Pack.ID[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.Entry.Offset, b.Entry.Offset)
	})
	return out
}

// packHandle names the pack of l.
func packHandle(l index.Location) store.Handle {
	return store.Handle{Type: store.PackFile, Name: l.Pack.ID.String()}
}
