package fuzz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/restic/chunker"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/delta"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// testKey is a fixed master key.
func testKey() *crypt.MasterKey {
	var k crypt.MasterKey
	for i := range k.Encrypt {
		k.Encrypt[i], k.ID[i] = byte(i), byte(0x20+i)
	}
	return &k
}

func id(b byte) crypt.ID {
	var x crypt.ID
	for i := range x {
		x[i] = b + byte(i)
	}
	return x
}

// samplePack returns a pack with a data, a tree and a delta blob.
func samplePack(tb testing.TB, mk *crypt.MasterKey) ([]byte, []pack.Entry) {
	tb.Helper()
	w, err := pack.NewWriter(mk, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range []struct {
		t    pack.BlobType
		enc  pack.Encoding
		data string
	}{{pack.DataBlob, pack.Raw, "hello"}, {pack.TreeBlob, pack.Zstd, "tree"}, {pack.DataBlob, pack.DeltaZstd, "delta"}} {
		if _, err := w.Add(b.t, b.enc, mk.BlobID([]byte(b.data)), id(9), []byte(b.data), len(b.data)); err != nil {
			tb.Fatal(err)
		}
	}
	p, entries, err := w.Finalize()
	if err != nil {
		tb.Fatal(err)
	}
	return p, entries
}

func FuzzPackDecodeHeader(f *testing.F) {
	_, entries := samplePack(f, testKey())
	last := entries[len(entries)-1]
	f.Add(pack.EncodeHeader(entries), last.Offset+last.Length)
	f.Add(pack.EncodeHeader(nil), int64(pack.PreambleSize))
	f.Add([]byte{1, 1, 0}, int64(100))
	f.Fuzz(func(t *testing.T, b []byte, dataEnd int64) {
		entries, err := pack.DecodeHeader(b, dataEnd)
		if err != nil {
			if !errors.Is(err, pack.ErrCorrupt) {
				t.Fatalf("error %v does not match pack.ErrCorrupt", err)
			}
			return
		}
		off := int64(pack.PreambleSize)
		for i, e := range entries {
			if e.Offset != off || e.Length < crypt.Overhead || !e.Type.Valid() || !e.Enc.Valid() {
				t.Fatalf("entry %d: %+v at expected offset %d", i, e, off)
			}
			off += e.Length
		}
		if off != dataEnd {
			t.Fatalf("blobs end at %d, dataEnd %d", off, dataEnd)
		}
		again, err := pack.DecodeHeader(pack.EncodeHeader(entries), dataEnd)
		if err != nil || !reflect.DeepEqual(again, entries) {
			t.Fatalf("re-encoded header: %v, %+v != %+v", err, again, entries)
		}
	})
}

func FuzzPackReadHeader(f *testing.F) {
	mk := testKey()
	p, _ := samplePack(f, mk)
	f.Add(p)
	w, _ := pack.NewWriter(mk, 0)
	empty, _, _ := w.Finalize()
	f.Add(empty)
	f.Add([]byte("BKPK\x01"))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, entries, err := pack.ReadHeader(bytes.NewReader(p), int64(len(p)), mk.Subkey)
		if err != nil {
			if !errors.Is(err, pack.ErrCorrupt) && !errors.Is(err, crypt.ErrAuth) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		// The header does not authenticate the blobs, so they may not
		// open; but they must lie between the preamble and the header, and
		// opening them must not panic.
		s, err := mk.Subkey([crypt.SaltSize]byte(p[5:pack.PreambleSize]))
		if err != nil {
			t.Fatal(err)
		}
		end := int64(pack.PreambleSize)
		for _, e := range entries {
			if e.Offset != end || e.Offset+e.Length > int64(len(p))-pack.TrailerSize-crypt.Overhead {
				t.Fatalf("entry %+v outside the blob area of a pack of %d bytes", e, len(p))
			}
			end += e.Length
			_, _ = pack.OpenBlob(s, e, nil, p[e.Offset:e.Offset+e.Length])
		}
	})
}

func FuzzIndexDecode(f *testing.F) {
	_, entries := samplePack(f, testKey())
	f.Add(index.Encode(&index.File{}))
	f.Add(index.Encode(&index.File{Supersedes: []crypt.ID{id(1), id(2)},
		Packs: []index.PackBlobs{{ID: id(3), Salt: id(4), Size: 1000, Blobs: entries}, {ID: id(5), Size: 37}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := index.Decode(b)
		if err != nil {
			if !errors.Is(err, index.ErrCorrupt) {
				t.Fatalf("error %v does not match index.ErrCorrupt", err)
			}
			return
		}
		for _, p := range file.Packs {
			for _, e := range p.Blobs {
				if e.Offset < pack.PreambleSize || e.Length < crypt.Overhead || e.Offset+e.Length > p.Size ||
					!e.Type.Valid() || !e.Enc.Valid() {
					t.Fatalf("pack %s of %d bytes: decoded invalid entry %+v", p.ID.Short(), p.Size, e)
				}
			}
		}
		again, err := index.Decode(index.Encode(file))
		if err != nil || !reflect.DeepEqual(again, file) {
			t.Fatalf("re-encoded index: %v, %+v != %+v", err, again, file)
		}
		x := index.New()
		if err := x.AddFile(file); err != nil {
			return // a pack of 4 GiB or more
		}
		for _, p := range file.Packs {
			for _, e := range p.Blobs {
				if !x.Has(e.ID) {
					t.Fatalf("blob %s not found after AddFile", e.ID.Short())
				}
			}
		}
	})
}

func FuzzDecodeTree(f *testing.F) {
	f.Add(repo.EncodeTree(0, nil))
	f.Add(repo.EncodeTree(0, []repo.TreeEntry{{ID: id(1), Size: 100}, {ID: id(2), Size: 1 << 40}}))
	f.Add(repo.EncodeTree(3, []repo.TreeEntry{{ID: id(7), Size: 0}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		level, entries, err := repo.DecodeTree(b)
		if err != nil {
			if !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("error %v does not match repo.ErrCorrupt", err)
			}
			return
		}
		if len(entries) > repo.TreeFanout || level < 0 || level > 255 {
			t.Fatalf("decoded level %d with %d entries", level, len(entries))
		}
		for _, e := range entries {
			if e.Size < 0 {
				t.Fatalf("negative size %d", e.Size)
			}
		}
		l2, e2, err := repo.DecodeTree(repo.EncodeTree(level, entries))
		if err != nil || l2 != level || !reflect.DeepEqual(e2, entries) {
			t.Fatalf("re-encoded tree: %v, level %d/%d", err, l2, level)
		}
	})
}

// fuzzPassword is the password of the seed key files.
const fuzzPassword = "fuzz"

func FuzzParseKeyFile(f *testing.F) {
	kf, err := crypt.NewKeyFile([]byte(fuzzPassword), testKey(), crypt.KDFParams{N: 16, R: 1, P: 1}, "host", "user")
	if err != nil {
		f.Fatal(err)
	}
	data, err := kf.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"version":1,"kdf":"scrypt","params":{"n":2,"r":1,"p":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := crypt.ParseKeyFile(b)
		if err != nil {
			return
		}
		if err := kf.Params.Validate(); err != nil {
			t.Fatalf("parsed a key file with invalid parameters: %v", err)
		}
		m1, err := kf.Marshal()
		if err != nil {
			t.Fatalf("a parsed key file does not marshal: %v", err)
		}
		kf2, err := crypt.ParseKeyFile(m1)
		if err != nil {
			t.Fatalf("a marshaled key file does not parse: %v", err)
		}
		if m2, _ := kf2.Marshal(); !bytes.Equal(m1, m2) {
			t.Fatalf("key file round trip:\n%s\n%s", m1, m2)
		}
		// Deriving costs 128*N*r*p bytes; keep the fuzzer fast.
		if 128*kf.Params.N*kf.Params.R*kf.Params.P > 1<<20 {
			return
		}
		mk, err := kf.Open([]byte(fuzzPassword))
		if err != nil && !errors.Is(err, crypt.ErrWrongPassword) {
			t.Fatalf("open: %v", err)
		}
		if err == nil && *mk != *testKey() {
			t.Fatal("a key file opened to another master key")
		}
	})
}

var fileKinds = []string{"config", "index", "snapshot", "lock"}

func FuzzOpenFile(f *testing.F) {
	mk := testKey()
	for _, kind := range fileKinds {
		for _, pt := range []string{"", "\x00{}", "some plaintext"} {
			sealed, err := mk.SealFile(kind, []byte(pt))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(sealed)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		opened := 0
		for _, kind := range fileKinds {
			pt, err := mk.OpenFile(kind, b)
			if err != nil {
				if !errors.Is(err, crypt.ErrAuth) {
					t.Fatalf("%s: error %v does not match crypt.ErrAuth", kind, err)
				}
				continue
			}
			opened++
			if len(pt) != len(b)-1-crypt.SaltSize-crypt.Overhead || b[0] != crypt.FileVersion {
				t.Fatalf("%s: opened %d bytes from a file of %d", kind, len(pt), len(b))
			}
		}
		if opened > 1 {
			t.Fatalf("one file opened as %d kinds", opened)
		}
	})
}

// fuzzRepo is a repository on a mem backend and its master key, for
// planting sealed files.
type fuzzRepo struct {
	be *mem.Backend
	r  *repo.Repository
	mk *crypt.MasterKey
}

func newFuzzRepo(f *testing.F) *fuzzRepo {
	f.Helper()
	ctx := context.Background()
	be := mem.New()
	r, err := repo.Init(ctx, be, []byte(fuzzPassword), repo.InitOptions{KDF: crypt.KDFParams{N: 16, R: 1, P: 1}, PackSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = r.Close() })
	var mk *crypt.MasterKey
	err = be.List(ctx, store.KeyFile, func(fi store.FileInfo) error {
		data, err := store.ReadAll(ctx, be, store.Handle{Type: store.KeyFile, Name: fi.Name})
		if err != nil {
			return err
		}
		kf, err := crypt.ParseKeyFile(data)
		if err != nil {
			return err
		}
		mk, err = kf.Open([]byte(fuzzPassword))
		return err
	})
	if err != nil || mk == nil {
		f.Fatalf("open the key: %v", err)
	}
	return &fuzzRepo{be: be, r: r, mk: mk}
}

// plant seals plain as a file of type ft and stores it under its name.
func (fr *fuzzRepo) plant(t *testing.T, ft store.FileType, kind string, plain []byte) store.Handle {
	t.Helper()
	sealed, err := fr.mk.SealFile(kind, plain)
	if err != nil {
		t.Fatal(err)
	}
	h := store.Handle{Type: ft}
	if ft != store.ConfigFile {
		h.Name = crypt.Hash(sealed).String()
	}
	if err := fr.be.Put(context.Background(), h, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzSnapshot feeds snapshot plaintexts (encoding byte and JSON) to
// LoadSnapshot. What it accepts must survive a save and load unchanged.
func FuzzSnapshot(f *testing.F) {
	fr := newFuzzRepo(f)
	ctx := context.Background()
	s, err := fr.r.SnapshotStream(ctx, bytes.NewReader([]byte("some data")), repo.SnapshotOptions{Name: "x", Host: "h", Tags: []string{"a", "b"}})
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(s)
	f.Add(append([]byte{0}, js...))
	f.Add([]byte("\x00{}"))
	f.Add([]byte("\x00{\"version\":2}"))
	f.Add([]byte("\x01\x28\xb5\x2f\xfd\x00\x58\x11\x00\x00\x7b\x7d"))
	load := func(t *testing.T, plain []byte) (*repo.Snapshot, error) {
		h := fr.plant(t, store.SnapshotFile, "snapshot", plain)
		defer fr.be.Delete(ctx, h)
		id, err := crypt.ParseID(h.Name)
		if err != nil {
			t.Fatal(err)
		}
		return fr.r.LoadSnapshot(ctx, id)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		if len(plain) > 512 && plain[0] == 1 {
			return // a small zstd frame decodes to at most a few MiB
		}
		s, err := load(t, plain)
		if err != nil {
			if !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, repo.ErrNewerFormat) {
				t.Fatalf("error %v matches neither repo.ErrCorrupt nor repo.ErrNewerFormat", err)
			}
			return
		}
		b1, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("a loaded snapshot does not marshal: %v", err)
		}
		s2, err := load(t, append([]byte{0}, b1...))
		if err != nil {
			t.Fatalf("a re-saved snapshot does not load: %v", err)
		}
		if b2, _ := json.Marshal(s2); !bytes.Equal(b1, b2) {
			t.Fatalf("snapshot round trip:\n%s\n%s", b1, b2)
		}
	})
}

// FuzzConfig plants config plaintexts and opens the repository. A config
// that opens must be valid and survive a save and open unchanged.
func FuzzConfig(f *testing.F) {
	fr := newFuzzRepo(f)
	ctx := context.Background()
	good, _ := json.Marshal(fr.r.Config())
	f.Add(append([]byte{0}, good...))
	f.Add([]byte("\x00{}"))
	f.Add([]byte("\x00{\"version\":2}"))
	open := func(t *testing.T, plain []byte) (*repo.Repository, error) {
		fr.plant(t, store.ConfigFile, "config", plain)
		r, err := repo.Open(ctx, fr.be, []byte(fuzzPassword), repo.OpenOptions{Workers: 1})
		if err == nil {
			t.Cleanup(func() { _ = r.Close() })
		}
		return r, err
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		if len(plain) > 512 && plain[0] == 1 {
			return // a small zstd frame decodes to at most a few MiB
		}
		r, err := open(t, plain)
		if err != nil {
			if !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, repo.ErrNewerFormat) {
				t.Fatalf("error %v matches neither repo.ErrCorrupt nor repo.ErrNewerFormat", err)
			}
			return
		}
		cfg := r.Config()
		if cfg.Version != repo.FormatVersion || cfg.Chunker.Validate() != nil || cfg.PackSize < 1<<20 {
			t.Fatalf("opened with an invalid config %+v", cfg)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := open(t, append([]byte{0}, b...))
		if err != nil {
			t.Fatalf("a re-saved config does not open: %v", err)
		}
		if r2.Config() != cfg {
			t.Fatalf("config round trip: %+v != %+v", r2.Config(), cfg)
		}
	})
}

// FuzzChunkParams decodes chunker parameters as a config holds them. Valid
// parameters must split a stream correctly.
func FuzzChunkParams(f *testing.F) {
	p, err := chunk.NewParams()
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(p)
	f.Add(js)
	f.Add([]byte(`{"algorithm":"rabin-restic-v0.4","polynomial":"3da3358b4dc173","min_size":64,"max_size":128,"average_bits":10}`))
	f.Add([]byte(`{"polynomial":"ffffffffffffffffff"}`))
	input := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 500)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p chunk.Params
		if json.Unmarshal(b, &p) != nil {
			return
		}
		if p.Validate() != nil {
			return
		}
		if p.MaxSize > 1<<20 {
			return // valid, but slow to exercise
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var p2 chunk.Params
		if err := json.Unmarshal(js, &p2); err != nil || p2 != p {
			t.Fatalf("params round trip: %v, %+v != %+v", err, p2, p)
		}
		checkSplit(t, chunk.NewSplitter(nil, p), p, input)
	})
}

// split returns copies of the chunks sp yields.
func split(t *testing.T, sp *chunk.Splitter) [][]byte {
	t.Helper()
	var out [][]byte
	var buf []byte
	for {
		c, err := sp.Next(buf)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(c))
		buf = c
	}
}

// checkSplit splits data with sp, which uses p, and checks the chunks: they
// reassemble to data, respect the size bounds, do not depend on how the
// reader delivers the bytes, and are content-defined (splitting from a
// boundary on gives the same later chunks).
func checkSplit(t *testing.T, sp *chunk.Splitter, p chunk.Params, data []byte) {
	t.Helper()
	sp.Reset(bytes.NewReader(data))
	chunks := split(t, sp)
	if !bytes.Equal(bytes.Join(chunks, nil), data) {
		t.Fatal("chunks do not reassemble to the input")
	}
	if len(data) == 0 && len(chunks) != 0 {
		t.Fatal("chunks from an empty stream")
	}
	for i, c := range chunks {
		last := i == len(chunks)-1
		if len(c) > int(p.MaxSize) || len(c) == 0 || (!last && len(c) < int(p.MinSize)) {
			t.Fatalf("chunk %d of %d has %d bytes (min %d, max %d)", i, len(chunks), len(c), p.MinSize, p.MaxSize)
		}
	}
	sp.Reset(iotest.OneByteReader(bytes.NewReader(data)))
	if again := split(t, sp); !reflect.DeepEqual(again, chunks) {
		t.Fatal("a one-byte reader gives other chunks")
	}
	if len(chunks) > 1 {
		sp.Reset(bytes.NewReader(data[len(chunks[0]):]))
		if rest := split(t, sp); !reflect.DeepEqual(rest, chunks[1:]) {
			t.Fatal("splitting from the first boundary gives other chunks")
		}
	}
}

// FuzzSplit splits arbitrary bytes with small parameters.
func FuzzSplit(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("a"), uint8(1))
	f.Add(bytes.Repeat([]byte{0}, 5000), uint8(2))
	f.Add(bytes.Repeat([]byte("the quick brown fox "), 300), uint8(3))
	params := []chunk.Params{
		{MinSize: 64, MaxSize: 128, AverageBits: 10},
		{MinSize: 64, MaxSize: 1024, AverageBits: 10},
		{MinSize: 256, MaxSize: 4096, AverageBits: 11},
		{MinSize: 1000, MaxSize: 1001, AverageBits: 26},
	}
	splitters := make([]*chunk.Splitter, len(params)) // reused: a Splitter holds a 512 KiB buffer
	for i := range params {
		params[i].Algorithm, params[i].Polynomial = chunk.AlgorithmRabin, chunker.Pol(0x3DA3358B4DC173)
		if err := params[i].Validate(); err != nil {
			f.Fatal(err)
		}
		splitters[i] = chunk.NewSplitter(nil, params[i])
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		i := int(which) % len(params)
		checkSplit(t, splitters[i], params[i], data)
	})
}

// deltaSeeds returns base/target pairs for the delta targets: small edits,
// a shuffled block, periodic and constant data, and unrelated content.
func deltaSeeds() [][2][]byte {
	base := bytes.Repeat([]byte("42\talice\talice@example.com\t2026-11-22\n43\tbob\tbob@example.com\t2026-11-23\n"), 40)
	edited := bytes.Clone(base)
	copy(edited[100:], "carol")
	edited = append(edited[:700], append([]byte("44\tdave\tdave@example.com\n"), edited[700:]...)...)
	moved := append(bytes.Clone(base[1500:]), base[:1500]...)
	return [][2][]byte{
		{base, edited},
		{base, moved},
		{base, nil},
		{nil, []byte("no base at all")},
		{bytes.Repeat([]byte{0}, 500), bytes.Repeat([]byte{0}, 700)},
		{[]byte("0123456789abcdef0123456789abcdef"), []byte("0123456789abcdefXY0123456789abcdef")},
	}
}

// deltaFuzzLimit is the output limit FuzzDeltaDecode passes: it keeps the
// fuzzer fast, and the limit itself is what Decode must respect.
const deltaFuzzLimit = 1 << 20

// FuzzDeltaDecode applies arbitrary programs to arbitrary bases. Decode must
// not panic, must report failures as delta.ErrCorrupt, and must never return
// (or allocate) more than the limit or other than the declared length.
func FuzzDeltaDecode(f *testing.F) {
	var e delta.Encoder
	for _, s := range deltaSeeds() {
		f.Add(s[0], e.Encode(nil, s[0], s[1]))
	}
	f.Add([]byte("0123456789abcdef"), []byte{delta.Version, 4, 4<<1 | 1, 12})
	f.Add([]byte{}, []byte{delta.Version, 0x80, 0x80, 0x80, 0x80, 0x08, 0x02, 'x'}) // declares 2^31
	f.Fuzz(func(t *testing.T, base, prog []byte) {
		out, err := delta.Decode(nil, base, prog, deltaFuzzLimit)
		if err != nil {
			if !errors.Is(err, delta.ErrCorrupt) {
				t.Fatalf("error %v does not match delta.ErrCorrupt", err)
			}
			if out != nil {
				t.Fatalf("a failed decode returned %d bytes", len(out))
			}
			return
		}
		n, err := delta.TargetLen(prog)
		if err != nil || n != len(out) {
			t.Fatalf("decoded %d bytes, TargetLen says %d (%v)", len(out), n, err)
		}
		if len(out) > deltaFuzzLimit || cap(out) > deltaFuzzLimit {
			t.Fatalf("decoded %d bytes (capacity %d) past the limit %d", len(out), cap(out), deltaFuzzLimit)
		}
		// The same program decodes the same into a reused buffer, and fails
		// against a limit one byte short.
		again, err := delta.Decode(make([]byte, 7, len(out)+7), base, prog, len(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second decode: %v, equal %v", err, bytes.Equal(again, out))
		}
		if len(out) > 0 {
			if _, err := delta.Decode(nil, base, prog, len(out)-1); !errors.Is(err, delta.ErrCorrupt) {
				t.Fatalf("limit %d below the declared %d: got %v", len(out)-1, len(out), err)
			}
		}
	})
}

// FuzzDeltaRoundTrip encodes a target against a base: the program must
// decode back to the target, be deterministic, and cost at most 11 bytes
// more than the target itself.
func FuzzDeltaRoundTrip(f *testing.F) {
	for _, s := range deltaSeeds() {
		f.Add(s[0], s[1])
	}
	var e delta.Encoder // reused, as encode workers reuse theirs
	f.Fuzz(func(t *testing.T, base, target []byte) {
		prog := e.Encode(nil, base, target)
		got, err := delta.Decode(nil, base, prog, len(target))
		if err != nil || !bytes.Equal(got, target) {
			t.Fatalf("round trip: %v, equal %v (program %x)", err, bytes.Equal(got, target), prog)
		}
		var fresh delta.Encoder
		if again := fresh.Encode(nil, base, target); !bytes.Equal(again, prog) {
			t.Fatalf("encoding is not deterministic:\n%x\n%x", prog, again)
		}
		if len(prog) > len(target)+11 {
			t.Fatalf("program of %d bytes for a target of %d", len(prog), len(target))
		}
	})
}

// FuzzCatalog feeds arbitrary bytes to the catalogue decoder of directory
// snapshots: it must never panic, and what it accepts must encode back to
// a catalogue that decodes to the same nodes.
func FuzzCatalog(f *testing.F) {
	h := crypt.Hash([]byte("x"))
	var seed bytes.Buffer
	_ = repo.WriteCatalog(&seed, []repo.Node{
		{Path: ".", Type: repo.NodeDir, Mode: 0o755},
		{Path: "a", Type: repo.NodeDir, Mode: 0o700, MTime: 5},
		{Path: "a/b", Type: repo.NodeFile, Mode: 0o644, Size: 3, Chunks: 1, Hash: &h},
		{Path: "a.txt", Type: repo.NodeSymlink, Mode: 0o777, Link: "a/b"},
	})
	f.Add(seed.Bytes())
	f.Add([]byte("{\"path\":\".\",\"type\":\"dir\"}\n{\"path\":\"..\",\"type\":\"file\"}\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var nodes []repo.Node
		if err := repo.ReadCatalog(bytes.NewReader(data), func(n *repo.Node) error {
			nodes = append(nodes, *n)
			return nil
		}); err != nil {
			if !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("error does not match ErrCorrupt: %v", err)
			}
			return
		}
		var again bytes.Buffer
		if err := repo.WriteCatalog(&again, nodes); err != nil {
			t.Fatalf("accepted nodes do not encode: %v", err)
		}
		var back []repo.Node
		if err := repo.ReadCatalog(&again, func(n *repo.Node) error { back = append(back, *n); return nil }); err != nil {
			t.Fatalf("re-encoded catalogue does not decode: %v", err)
		}
		if len(back) != len(nodes) {
			t.Fatalf("%d nodes after a round trip, want %d", len(back), len(nodes))
		}
	})
}
