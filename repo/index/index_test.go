package index

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
)

// fill returns an ID (or salt) whose bytes count up from start.
func fill(start byte) [crypt.IDSize]byte {
	var id [crypt.IDSize]byte
	for i := range id {
		id[i] = start + byte(i)
	}
	return id
}

// goldenFile is a small index file that uses every field: one superseded
// index, two packs, and a delta blob with a base.
func goldenFile() *File {
	return &File{
		Supersedes: []crypt.ID{fill(0xe0)},
		Packs: []PackBlobs{
			{ID: fill(0x00), Salt: fill(0x20), Size: 37 + 25 + 1000 + 40, Blobs: []pack.Entry{
				{Type: pack.DataBlob, Enc: pack.Raw, ID: fill(0x40), Offset: 37, Length: 25, RawLength: 9},
				{Type: pack.DataBlob, Enc: pack.Zstd, ID: fill(0x60), Offset: 62, Length: 1000, RawLength: 300000},
			}},
			{ID: fill(0x80), Salt: fill(0xa0), Size: 200, Blobs: []pack.Entry{
				{Type: pack.TreeBlob, Enc: pack.DeltaZstd, ID: fill(0xc0), Base: fill(0x10), Offset: 37, Length: 16, RawLength: 0},
			}},
		},
	}
}

// goldenIndex pins the index encoding of FORMAT.md §8 for goldenFile. A
// change is a format change: bump the version instead.
const goldenIndex = "424b4958" + "01" + // magic, version
	"01" + "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff" + // supersedes
	"02" + // packs
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + // pack 0 ID
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" + // salt
	"ce08" + "02" + // size 1102, 2 blobs
	"0100" + "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" + "25" + "19" + "09" +
	"0101" + "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" + "3e" + "e807" + "e0a712" +
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" + // pack 1 ID
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" + // salt
	"c801" + "01" + // size 200, 1 blob
	"0202" + "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" +
	"101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f" + "25" + "10" + "00"

func TestGoldenIndex(t *testing.T) {
	b := Encode(goldenFile())
	if got := hex.EncodeToString(b); got != goldenIndex {
		t.Fatalf("index encoding changed (format change?):\n got %s\nwant %s", got, goldenIndex)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, goldenFile()) {
		t.Fatalf("decoded %+v, want %+v", f, goldenFile())
	}
}

// randomFile returns a valid index file with random content.
func randomFile(rng *rand.Rand) *File {
	f := &File{Supersedes: make([]crypt.ID, rng.IntN(3))}
	for i := range f.Supersedes {
		f.Supersedes[i] = randID(rng)
	}
	f.Packs = make([]PackBlobs, rng.IntN(4))
	for i := range f.Packs {
		p := PackBlobs{ID: randID(rng), Salt: randID(rng)}
		off := int64(pack.PreambleSize)
		p.Blobs = make([]pack.Entry, rng.IntN(50))
		for j := range p.Blobs {
			e := pack.Entry{Type: pack.BlobType(1 + rng.IntN(2)), Enc: pack.Encoding(rng.IntN(3)), ID: randID(rng),
				Offset: off, Length: int64(crypt.Overhead + rng.IntN(1<<22)), RawLength: int64(rng.IntN(1 << 22))}
			if e.Enc == pack.DeltaZstd {
				e.Base = randID(rng)
			}
			off += e.Length
			p.Blobs[j] = e
		}
		p.Size = off + int64(rng.IntN(1000))
		f.Packs[i] = p
	}
	return f
}

func randID(rng *rand.Rand) crypt.ID {
	var id crypt.ID
	for i := 0; i < len(id); i += 8 {
		binary.LittleEndian.PutUint64(id[i:], rng.Uint64())
	}
	return id
}

func TestEncodeDecodeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		f := randomFile(rng)
		got, err := Decode(Encode(f))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		// Decode makes empty slices where f may have nil ones.
		if fmt.Sprint(got) != fmt.Sprint(f) {
			t.Fatalf("file %d: decoded %+v, want %+v", i, got, f)
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	valid := Encode(goldenFile())
	mod := func(i int, v byte) []byte {
		b := append([]byte(nil), valid...)
		b[i] = v
		return b
	}
	// header builds an index with one pack of size packSize and one blob.
	header := func(packSize uint64, typ pack.BlobType, enc pack.Encoding, off, length, raw uint64) []byte {
		b := append([]byte(Magic), Version, 0, 1)
		b = append(b, make([]byte, 2*crypt.IDSize)...)
		b = binary.AppendUvarint(b, packSize)
		b = append(b, 1, byte(typ), byte(enc))
		b = append(b, make([]byte, crypt.IDSize)...)
		if enc == pack.DeltaZstd {
			b = append(b, make([]byte, crypt.IDSize)...)
		}
		b = binary.AppendUvarint(b, off)
		b = binary.AppendUvarint(b, length)
		return binary.AppendUvarint(b, raw)
	}
	if _, err := Decode(header(100, pack.DataBlob, pack.Raw, 37, 16, 0)); err != nil {
		t.Fatalf("the test's own valid input: %v", err)
	}
	cases := map[string][]byte{
		"empty":               nil,
		"bad magic":           mod(0, 'X'),
		"version 0":           mod(4, 0),
		"version 2":           mod(4, 2),
		"trailing byte":       append(append([]byte(nil), valid...), 0),
		"supersedes too many": mod(5, 0x7f),
		"huge supersedes":     append([]byte(Magic+"\x01"), binary.AppendUvarint(nil, math.MaxUint64)...),
		"huge pack count":     append([]byte(Magic+"\x01\x00"), binary.AppendUvarint(nil, math.MaxUint64)...),
		"unknown type":        header(100, 0, pack.Raw, 37, 16, 0),
		"type 3":              header(100, 3, pack.Raw, 37, 16, 0),
		"unknown encoding":    header(100, pack.DataBlob, 3, 37, 16, 0),
		"offset in preamble":  header(100, pack.DataBlob, pack.Raw, 36, 16, 0),
		"length < overhead":   header(100, pack.DataBlob, pack.Raw, 37, 15, 0),
		"past pack end":       header(100, pack.DataBlob, pack.Raw, 37, 64, 0),
		"length too big":      header(1<<40, pack.DataBlob, pack.Raw, 37, pack.MaxBlobSize+1, 0),
		"raw length too big":  header(100, pack.DataBlob, pack.Raw, 37, 16, pack.MaxBlobSize+1),
		"pack size too big":   header(1<<40+1, pack.DataBlob, pack.Raw, 37, 16, 0),
		"offset overflows":    header(100, pack.DataBlob, pack.Raw, math.MaxUint64-5, 16, 0),
		"delta truncated":     header(100, pack.DataBlob, pack.DeltaZstd, 37, 16, 0)[:120],
	}
	for i := range len(valid) {
		cases[fmt.Sprintf("truncated to %d", i)] = valid[:i]
	}
	for name, b := range cases {
		if f, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %+v, %v; want ErrCorrupt", name, f, err)
		}
	}
}

func TestIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := New()
	want := map[crypt.ID]Location{}
	var packs []Pack
	// Enough blobs to merge the unsorted tail into the sorted part several
	// times.
	for p := range 40 {
		pk := Pack{ID: randID(rng), Salt: randID(rng), Size: 1 << 24}
		packs = append(packs, pk)
		var blobs []pack.Entry
		for i := range 500 {
			e := pack.Entry{Type: pack.DataBlob, Enc: pack.Zstd, ID: randID(rng),
				Offset: int64(37 + i*100), Length: 100, RawLength: int64(rng.IntN(1 << 20))}
			if i%97 == 0 {
				e.Enc, e.Base = pack.DeltaZstd, randID(rng)
			}
			blobs = append(blobs, e)
			want[e.ID] = Location{Pack: pk, Entry: e}
		}
		if err := x.AddPack(pk, blobs); err != nil {
			t.Fatal(err)
		}
		if p == 20 {
			x.Compact()
		}
	}
	check := func() {
		t.Helper()
		if x.Len() != len(want) {
			t.Fatalf("Len %d, want %d", x.Len(), len(want))
		}
		for id, w := range want {
			got, ok := x.Lookup(id)
			if !ok || got != w {
				t.Fatalf("Lookup %s: %+v, %v; want %+v", id.Short(), got, ok, w)
			}
			if !x.Has(id) {
				t.Fatalf("Has %s is false", id.Short())
			}
		}
		n := 0
		x.Each(func(l Location) {
			n++
			if want[l.Entry.ID] != l {
				t.Fatalf("Each gave %+v", l)
			}
		})
		if n != len(want) {
			t.Fatalf("Each visited %d, want %d", n, len(want))
		}
		if !reflect.DeepEqual(x.Packs(), packs) {
			t.Fatal("Packs differs")
		}
	}
	check()
	x.Compact()
	check()
	for range 100 {
		id := randID(rng)
		if _, ok := x.Lookup(id); ok || x.Has(id) {
			t.Fatalf("found unknown blob %s", id.Short())
		}
	}
}

// TestIndexDuplicates adds one blob in two packs, and the same pack twice:
// Lookup finds a copy, Len counts copies, the pack table has no duplicates.
func TestIndexDuplicates(t *testing.T) {
	x := New()
	a := Pack{ID: fill(1), Size: 1000}
	b := Pack{ID: fill(2), Size: 1000}
	e := pack.Entry{Type: pack.DataBlob, ID: fill(9), Offset: 37, Length: 20, RawLength: 4}
	for _, p := range []Pack{a, b, a} {
		if err := x.AddPack(p, []pack.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if x.Len() != 3 || len(x.Packs()) != 2 {
			t.Fatalf("Len %d, %d packs; want 3 and 2", x.Len(), len(x.Packs()))
		}
		l, ok := x.Lookup(e.ID)
		if !ok || l.Entry != e || (l.Pack != a && l.Pack != b) {
			t.Fatalf("Lookup: %+v, %v", l, ok)
		}
		x.Compact()
	}
}

func TestIndexRejectsHugePack(t *testing.T) {
	x := New()
	if err := x.AddPack(Pack{Size: math.MaxUint32 + 1}, nil); err == nil {
		t.Fatal("AddPack accepted a pack of 4 GiB")
	}
}

func TestAddFile(t *testing.T) {
	x := New()
	f := goldenFile()
	if err := x.AddFile(f); err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Packs {
		for _, e := range p.Blobs {
			l, ok := x.Lookup(e.ID)
			if !ok || l.Entry != e || l.Pack != (Pack{ID: p.ID, Salt: p.Salt, Size: p.Size}) {
				t.Fatalf("Lookup %s: %+v, %v", e.ID.Short(), l, ok)
			}
		}
	}
}
