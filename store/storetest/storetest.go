package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/bk-backup/bk/store"
)

// Run runs the conformance suite, one subtest per property. Every subtest
// gets a fresh, empty backend from newBackend and closes it when it ends.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b store.Backend)
	}{
		{"PutGetStatDelete", testPutGetStatDelete},
		{"EmptyFile", testEmptyFile},
		{"RangedGet", testRangedGet},
		{"GetFnError", testGetFnError},
		{"NotFound", testNotFound},
		{"List", testList},
		{"ListEmpty", testListEmpty},
		{"ListStopsAtError", testListStopsAtError},
		{"ListFnMayCallBackend", testListFnMayCallBackend},
		{"PutSizeMismatch", testPutSizeMismatch},
		{"PutReaderError", testPutReaderError},
		{"Overwrite", testOverwrite},
		{"OverwriteAtomic", testOverwriteAtomic},
		{"InvalidHandles", testInvalidHandles},
		{"Concurrent", testConcurrent},
		{"LargeFile", testLargeFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("close %s: %v", b.Location(), err)
				}
			})
			tt.fn(t, b)
		})
	}
}

func testPutGetStatDelete(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	for _, typ := range store.AllTypes {
		t.Run(string(typ), func(t *testing.T) {
			h := g.handle(typ)
			data := g.bytes(1 + g.IntN(4096))
			mustPut(t, b, h, data)
			if got := mustGet(t, b, h); !bytes.Equal(got, data) {
				t.Fatalf("get %s: got %d bytes, want the %d put", h, len(got), len(data))
			}
			fi, err := b.Stat(ctx, h)
			if err != nil {
				t.Fatalf("stat %s: %v", h, err)
			}
			if want := (store.FileInfo{Name: h.Name, Size: int64(len(data))}); fi != want {
				t.Fatalf("stat %s = %+v, want %+v", h, fi, want)
			}
			wantList(t, b, typ, map[string]int64{h.Name: int64(len(data))})

			if err := b.Delete(ctx, h); err != nil {
				t.Fatalf("delete %s: %v", h, err)
			}
			if _, err := store.ReadAll(ctx, b, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("get after delete: err = %v, want ErrNotFound", err)
			}
			if _, err := b.Stat(ctx, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("stat after delete: err = %v, want ErrNotFound", err)
			}
			wantList(t, b, typ, map[string]int64{})
		})
	}
}

func testEmptyFile(t *testing.T, b store.Backend) {
	h := newGen(t).handle(store.LockFile)
	mustPut(t, b, h, nil)
	if got := mustGet(t, b, h); len(got) != 0 {
		t.Errorf("get empty file: got %d bytes", len(got))
	}
	wantList(t, b, store.LockFile, map[string]int64{h.Name: 0})
}

func testRangedGet(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	h := g.handle(store.PackFile)
	data := g.bytes(1000)
	mustPut(t, b, h, data)

	tests := []struct {
		name        string
		off, length int64
		want        []byte // nil: an error is expected
		eof         bool   // the error must match io.ErrUnexpectedEOF
	}{
		{"whole", 0, 0, data, false},
		{"whole exact", 0, 1000, data, false},
		{"prefix", 0, 10, data[:10], false},
		{"middle", 100, 200, data[100:300], false},
		{"to end", 900, 0, data[900:], false},
		{"last byte", 999, 1, data[999:], false},
		{"one past end", 0, 1001, nil, true},
		{"tail past end", 990, 20, nil, true},
		{"offset past end", 1001, 0, nil, true},
		{"offset far past end", 5000, 10, nil, true},
		{"negative offset", -1, 10, nil, false},
		{"negative length", 10, -1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			err := b.Get(ctx, h, tt.off, tt.length, func(rd io.Reader) error {
				var err error
				got, err = io.ReadAll(rd)
				return err
			})
			switch {
			case tt.want == nil && err == nil:
				t.Fatalf("get %d+%d of %d bytes: no error, read %d bytes", tt.off, tt.length, len(data), len(got))
			case tt.want == nil && tt.eof && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Fatalf("get %d+%d: err = %v, want io.ErrUnexpectedEOF", tt.off, tt.length, err)
			case tt.want != nil && err != nil:
				t.Fatalf("get %d+%d: %v", tt.off, tt.length, err)
			case tt.want != nil && !bytes.Equal(got, tt.want):
				t.Fatalf("get %d+%d: got %d bytes, want %d (or content differs)", tt.off, tt.length, len(got), len(tt.want))
			}
		})
	}
}

func testGetFnError(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	h := g.handle(store.IndexFile)
	mustPut(t, b, h, g.bytes(100))
	errFn := errors.New("fn failed")
	calls := 0
	err := b.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		calls++
		_, _ = io.ReadFull(rd, make([]byte, 10))
		return errFn
	})
	if !errors.Is(err, errFn) {
		t.Errorf("get: err = %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want 1", calls)
	}
	// fn need not read everything.
	if err := b.Get(ctx, h, 0, 0, func(io.Reader) error { return nil }); err != nil {
		t.Errorf("get with fn that reads nothing: %v", err)
	}
}

func testNotFound(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	for _, typ := range store.AllTypes {
		t.Run(string(typ), func(t *testing.T) {
			h := g.handle(typ)
			if typ != store.ConfigFile {
				// Another file of the type exists, so the type's folder does.
				mustPut(t, b, g.handle(typ), g.bytes(10))
			}
			ops := []struct {
				name string
				call func() error
			}{
				{"get", func() error { _, err := store.ReadAll(ctx, b, h); return err }},
				{"ranged get", func() error { _, err := store.ReadAt(ctx, b, h, 1, 2); return err }},
				{"stat", func() error { _, err := b.Stat(ctx, h); return err }},
				{"delete", func() error { return b.Delete(ctx, h) }},
			}
			for _, op := range ops {
				if err := op.call(); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s %s: err = %v, want ErrNotFound", op.name, h, err)
				}
			}
			mustPut(t, b, h, g.bytes(10))
			if err := b.Delete(ctx, h); err != nil {
				t.Fatalf("delete %s: %v", h, err)
			}
			if err := b.Delete(ctx, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("second delete %s: err = %v, want ErrNotFound", h, err)
			}
		})
	}
}

func testList(t *testing.T, b store.Backend) {
	g := newGen(t)
	counts := map[store.FileType]int{
		store.ConfigFile: 1, store.KeyFile: 2, store.LockFile: 1,
		store.SnapshotFile: 5, store.IndexFile: 3, store.PackFile: 40,
	}
	want := make(map[store.FileType]map[string]int64)
	for typ, n := range counts {
		want[typ] = make(map[string]int64)
		for range n {
			h, data := g.handle(typ), g.bytes(g.IntN(300))
			mustPut(t, b, h, data)
			want[typ][h.Name] = int64(len(data))
		}
	}
	for _, typ := range store.AllTypes {
		wantList(t, b, typ, want[typ])
	}
	// Delete every other file; the listing follows.
	for _, typ := range store.AllTypes {
		del := true
		for name := range want[typ] {
			if del {
				mustDelete(t, b, store.Handle{Type: typ, Name: name})
				delete(want[typ], name)
			}
			del = !del
		}
		wantList(t, b, typ, want[typ])
	}
}

func testListEmpty(t *testing.T, b store.Backend) {
	for _, typ := range store.AllTypes {
		wantList(t, b, typ, map[string]int64{})
	}
}

func testListStopsAtError(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	for range 5 {
		mustPut(t, b, g.handle(store.SnapshotFile), g.bytes(10))
	}
	errStop := errors.New("stop")
	calls := 0
	err := b.List(ctx, store.SnapshotFile, func(store.FileInfo) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("list: err = %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after returning an error, want 1", calls)
	}
}

func testListFnMayCallBackend(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	want := make(map[string]int64)
	for range 5 {
		h, data := g.handle(store.IndexFile), g.bytes(50)
		mustPut(t, b, h, data)
		want[h.Name] = int64(len(data))
	}
	err := b.List(ctx, store.IndexFile, func(fi store.FileInfo) error {
		h := store.Handle{Type: store.IndexFile, Name: fi.Name}
		data, err := store.ReadAll(ctx, b, h)
		if err != nil {
			return err
		}
		if int64(len(data)) != fi.Size {
			return fmt.Errorf("%s: listed %d bytes, read %d", h, fi.Size, len(data))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list calling get: %v", err)
	}
}

func testPutSizeMismatch(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	data := g.bytes(100)
	tests := []struct {
		name string
		data []byte
		size int64
	}{
		{"short", data, 101},
		{"long", data, 99},
		{"empty reader", nil, 10},
		{"size zero", data, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := g.handle(store.PackFile)
			if err := b.Put(ctx, h, bytes.NewReader(tt.data), tt.size); err == nil {
				t.Fatalf("put %d bytes with size %d: no error", len(tt.data), tt.size)
			}
			if _, err := b.Stat(ctx, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("stat after failed put: err = %v, want ErrNotFound", err)
			}
			wantList(t, b, store.PackFile, map[string]int64{})

			// A failed overwrite keeps the old file.
			old := g.bytes(30)
			mustPut(t, b, h, old)
			if err := b.Put(ctx, h, bytes.NewReader(tt.data), tt.size); err == nil {
				t.Fatalf("overwrite with %d bytes and size %d: no error", len(tt.data), tt.size)
			}
			if got := mustGet(t, b, h); !bytes.Equal(got, old) {
				t.Errorf("failed overwrite changed the file: %d bytes, want the old %d", len(got), len(old))
			}
			mustDelete(t, b, h)
		})
	}
}

// errReader yields n bytes, then err.
type errReader struct {
	n   int
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func (r *errReader) Seek(int64, int) (int64, error) { return 0, errors.New("seek not supported") }

func testPutReaderError(t *testing.T, b store.Backend) {
	ctx := t.Context()
	h := newGen(t).handle(store.PackFile)
	errRead := errors.New("read failed")
	err := b.Put(ctx, h, &errReader{n: 5000, err: errRead}, 10000)
	if !errors.Is(err, errRead) {
		t.Errorf("put from failing reader: err = %v, want the reader's error", err)
	}
	if _, err := b.Stat(ctx, h); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stat after failed put: err = %v, want ErrNotFound", err)
	}
	wantList(t, b, store.PackFile, map[string]int64{})
}

func testOverwrite(t *testing.T, b store.Backend) {
	g := newGen(t)
	for _, typ := range store.AllTypes {
		h := g.handle(typ)
		mustPut(t, b, h, g.bytes(500))
		data := g.bytes(200)
		mustPut(t, b, h, data)
		if got := mustGet(t, b, h); !bytes.Equal(got, data) {
			t.Errorf("get %s after overwrite: got %d bytes, want the new %d", h, len(got), len(data))
		}
		wantList(t, b, typ, map[string]int64{h.Name: int64(len(data))})
	}
}

func testOverwriteAtomic(t *testing.T, b store.Backend) {
	ctx := t.Context()
	g := newGen(t)
	h := g.handle(store.IndexFile)
	versions := [][]byte{g.bytes(256 << 10), g.bytes(100 << 10)}
	mustPut(t, b, h, versions[0])

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range 20 {
			data := versions[i%2]
			if err := b.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Errorf("put %s: %v", h, err)
				return
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := store.ReadAll(ctx, b, h)
				if err != nil {
					t.Errorf("get %s during overwrites: %v", h, err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("get %s during overwrites: %d bytes that are neither version", h, len(got))
					return
				}
			}
		})
	}
	wg.Wait()
}

func testInvalidHandles(t *testing.T, b store.Backend) {
	ctx := t.Context()
	handles := []store.Handle{
		{Type: store.PackFile, Name: "../x"},
		{Type: store.KeyFile, Name: "../../config"},
		{Type: store.PackFile, Name: "ab/cd"},
		{Type: store.SnapshotFile, Name: ""},
		{Type: store.IndexFile, Name: ".tmp-1234"},
		{Type: store.LockFile, Name: "-x"},
		{Type: store.ConfigFile, Name: "x"},
		{Type: "bogus", Name: "abcd"},
		{Type: "", Name: "abcd"},
	}
	for _, h := range handles {
		t.Run(fmt.Sprintf("%s/%s", h.Type, h.Name), func(t *testing.T) {
			if err := b.Put(ctx, h, bytes.NewReader([]byte("x")), 1); err == nil {
				t.Errorf("put %+v: no error", h)
			}
			if err := b.Get(ctx, h, 0, 0, func(io.Reader) error { return nil }); err == nil {
				t.Errorf("get %+v: no error", h)
			}
			if _, err := b.Stat(ctx, h); err == nil {
				t.Errorf("stat %+v: no error", h)
			}
			if err := b.Delete(ctx, h); err == nil {
				t.Errorf("delete %+v: no error", h)
			}
		})
	}
	for _, typ := range []store.FileType{"bogus", "", "data/.."} {
		if err := b.List(ctx, typ, func(store.FileInfo) error { return nil }); err == nil {
			t.Errorf("list %q: no error", typ)
		}
	}
	for _, typ := range store.AllTypes {
		wantList(t, b, typ, map[string]int64{})
	}
}

func testConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	const workers, files = 8, 24
	types := store.AllTypes[1:] // the config is a single file
	var (
		mu   sync.Mutex
		want = make(map[store.FileType]map[string]int64)
		wg   sync.WaitGroup
	)
	for _, typ := range types {
		want[typ] = make(map[string]int64)
	}
	for w := range workers {
		wg.Go(func() {
			g := newGenSeed(t.Name(), uint64(w))
			for i := range files {
				typ := types[i%len(types)]
				h, data := g.handle(typ), g.bytes(g.IntN(8<<10))
				if err := b.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Errorf("put %s: %v", h, err)
					return
				}
				got, err := store.ReadAll(ctx, b, h)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("get %s after put: %d bytes, err %v; want %d bytes", h, len(got), err, len(data))
					return
				}
				if fi, err := b.Stat(ctx, h); err != nil || fi.Size != int64(len(data)) {
					t.Errorf("stat %s after put: %+v, %v; want size %d", h, fi, err, len(data))
					return
				}
				if i%4 == 0 {
					if err := listHas(ctx, b, h); err != nil {
						t.Error(err)
						return
					}
				}
				if i%2 == 1 {
					if err := b.Delete(ctx, h); err != nil {
						t.Errorf("delete %s: %v", h, err)
						return
					}
					continue
				}
				mu.Lock()
				want[typ][h.Name] = int64(len(data))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, typ := range types {
		wantList(t, b, typ, want[typ])
	}
}

func listHas(ctx context.Context, b store.Backend, h store.Handle) error {
	found := false
	err := b.List(ctx, h.Type, func(fi store.FileInfo) error {
		found = found || fi.Name == h.Name
		return nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("list %s: %w", h.Type, err)
	case !found:
		return fmt.Errorf("list %s after put: %s missing", h.Type, h)
	}
	return nil
}

func testLargeFile(t *testing.T, b store.Backend) {
	ctx := t.Context()
	size := 20 << 20
	if testing.Short() {
		size = 4 << 20
	}
	g := newGen(t)
	h := g.handle(store.PackFile)
	data := g.bytes(size)
	mustPut(t, b, h, data)
	if got := mustGet(t, b, h); !bytes.Equal(got, data) {
		t.Fatalf("get %s: got %d bytes, want the %d put (or content differs)", h, len(got), len(data))
	}
	ranges := []struct{ off, length int }{
		{size - 1<<20, 1 << 20},
		{size/2 - 12345, 1 << 20},
		{size - 7, 0},
	}
	for _, r := range ranges {
		want := data[r.off:]
		if r.length > 0 {
			want = data[r.off : r.off+r.length]
		}
		var got []byte
		err := b.Get(ctx, h, int64(r.off), int64(r.length), func(rd io.Reader) error {
			var err error
			got, err = io.ReadAll(rd)
			return err
		})
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("get %d+%d: %d bytes, err %v; want %d bytes", r.off, r.length, len(got), err, len(want))
		}
	}
}

// gen makes deterministic test data and names.
type gen struct{ *rand.ChaCha8 }

func newGen(t testing.TB) gen { return newGenSeed(t.Name(), 0) }

func newGenSeed(name string, n uint64) gen {
	h := fnv.New64a()
	h.Write([]byte(name))
	var seed [32]byte
	copy(seed[:], fmt.Sprintf("%016x%016x", h.Sum64(), n))
	return gen{rand.NewChaCha8(seed)}
}

func (g gen) bytes(n int) []byte {
	buf := make([]byte, n)
	_, _ = g.Read(buf)
	return buf
}

// IntN returns a number in [0, n).
func (g gen) IntN(n int) int { return int(g.Uint64() % uint64(n)) }

// handle returns a handle with a random 64-digit hex name, or the config.
func (g gen) handle(t store.FileType) store.Handle {
	if t == store.ConfigFile {
		return store.Handle{Type: t}
	}
	return store.Handle{Type: t, Name: hex.EncodeToString(g.bytes(32))}
}

func mustPut(t testing.TB, b store.Backend, h store.Handle, data []byte) {
	t.Helper()
	ctx := t.Context()
	if err := b.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", h, err)
	}
}

func mustGet(t testing.TB, b store.Backend, h store.Handle) []byte {
	t.Helper()
	ctx := t.Context()
	data, err := store.ReadAll(ctx, b, h)
	if err != nil {
		t.Fatalf("get %s: %v", h, err)
	}
	return data
}

func mustDelete(t testing.TB, b store.Backend, h store.Handle) {
	t.Helper()
	ctx := t.Context()
	if err := b.Delete(ctx, h); err != nil {
		t.Fatalf("delete %s: %v", h, err)
	}
}

// wantList checks that List reports exactly the files in want (name → size),
// each once.
func wantList(t testing.TB, b store.Backend, typ store.FileType, want map[string]int64) {
	t.Helper()
	ctx := t.Context()
	got := make(map[string]int64)
	err := b.List(ctx, typ, func(fi store.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			return fmt.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", typ, err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("list %s: got %v, want %v", typ, got, want)
	}
}
