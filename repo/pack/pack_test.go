package pack

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/bk-backup/bk/crypt"
)

// testKey is a fixed master key: Encrypt 00..1f, ID 20..3f.
func testKey() *crypt.MasterKey {
	var k crypt.MasterKey
	for i := range k.Encrypt {
		k.Encrypt[i], k.ID[i] = byte(i), byte(0x20+i)
	}
	return &k
}

// testSalt is a fixed salt 40..5f.
func testSalt() [crypt.SaltSize]byte {
	var s [crypt.SaltSize]byte
	for i := range s {
		s[i] = byte(0x40 + i)
	}
	return s
}

// blob is one blob to put in a test pack.
type blob struct {
	t       BlobType
	enc     Encoding
	base    crypt.ID
	encoded []byte
	raw     int
}

// goldenBlobs are the blobs of the golden pack: a raw data blob, a "zstd"
// tree blob (the pack does not look inside) and a delta blob with a base.
func goldenBlobs(mk *crypt.MasterKey) []blob {
	var base crypt.ID
	for i := range base {
		base[i] = byte(0xa0 + i)
	}
	return []blob{
		{t: DataBlob, enc: Raw, encoded: []byte("hello, bk"), raw: 9},
		{t: TreeBlob, enc: Zstd, encoded: []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}, raw: 300},
		{t: DataBlob, enc: DeltaZstd, base: base, encoded: []byte("delta"), raw: 1 << 20},
	}
}

func blobID(mk *crypt.MasterKey, b blob) crypt.ID { return mk.BlobID(b.encoded) }

// specPack builds a pack from FORMAT.md §6 directly, with the given salt:
// magic, version, salt, each blob sealed with its offset as counter and its
// associated data, the sealed header (counter 0) and its length.
func specPack(t *testing.T, mk *crypt.MasterKey, salt [crypt.SaltSize]byte, blobs []blob) ([]byte, []Entry) {
	t.Helper()
	s, err := mk.Subkey(salt)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte("BKPK"), 1)
	out = append(out, salt[:]...)
	var entries []Entry
	for _, b := range blobs {
		id := blobID(mk, b)
		ad := append([]byte("bk blob v1"), byte(b.t), byte(b.enc))
		ad = append(ad, id[:]...)
		if b.enc == DeltaZstd {
			ad = append(ad, b.base[:]...)
		}
		off := len(out)
		out = s.Seal(out, uint64(off), b.encoded, ad)
		e := Entry{Type: b.t, Enc: b.enc, ID: id, Offset: int64(off), Length: int64(len(out) - off), RawLength: int64(b.raw)}
		if b.enc == DeltaZstd {
			e.Base = b.base
		}
		entries = append(entries, e)
	}
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, uint64(len(entries)))
	for _, e := range entries {
		hdr = append(hdr, byte(e.Type), byte(e.Enc))
		hdr = append(hdr, e.ID[:]...)
		if e.Enc == DeltaZstd {
			hdr = append(hdr, e.Base[:]...)
		}
		hdr = binary.AppendUvarint(hdr, uint64(e.Length))
		hdr = binary.AppendUvarint(hdr, uint64(e.RawLength))
	}
	start := len(out)
	out = s.Seal(out, 0, hdr, []byte("bk pack header v1"))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(out)-start))
	return out, entries
}

// The golden vectors pin the pack format of FORMAT.md §6 under testKey and
// testSalt. A change is a format change: bump the version instead.
const (
	goldenAD = "626b20626c6f62207631" + "02" + "01" +
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	goldenHeader = "03" +
		"0100" + "17ce98ce925e66c76245fd158b7bf22f53bb04572d8b95874d45a0aa07323410" + "19" + "09" +
		"0201" + "e21e4170dbde46bfca98c1a59780cddb4c19fd9e820d8fba9610e9d418bd2062" + "17" + "ac02" +
		"0102" + "45115f8026480529ec1d93b9c05a8bfb0dcbee05cfab99d9c5a7e5b2d360a91c" +
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" + "15" + "808040"
	goldenPack = "424b504b" + "01" + // magic, version
		"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" + // salt
		// blob 0 (offset 37), blob 1 (offset 62), blob 2 (offset 85)
		"8fd63d5109695bfb331edb5cd9de8ac9fd65e05d712e69ef45" +
		"9ac699875bd17328b4bc73dce7b090c9267f7638c44487" +
		"04124750b338d67b7a71a67c92bed77beb63c01b85" +
		// sealed header
		"fbe614c330e0ca459cead9c2a7644e104b686959e71dd536f12667ab817309ec" +
		"98f4b5c1d26a3c9bd726da304a1fa8e70eaf4bf0d93845f8ad0506fb296d3ea6" +
		"eeb381cd383461cf7946eb00d074db8ce0280d8d40bbe1be1b737c3662f369e3" +
		"5ce6d8fc31c59db49bfa9d5aca1e0132504943110feaf17399a63c5f33fe5756" +
		"439e032a1156d6c9e15263dece8fa270682f217dd0cb4db3939062c216e22bd8" +
		"a0000000" // header length, uint32 LE
)

func TestGoldenAD(t *testing.T) {
	var id crypt.ID
	for i := range id {
		id[i] = byte(i)
	}
	if got := hex.EncodeToString(AD(TreeBlob, Zstd, id, crypt.ID{0xff})); got != goldenAD {
		t.Fatalf("blob associated data changed:\n got %s\nwant %s", got, goldenAD)
	}
	if got := AD(DataBlob, DeltaZstd, id, crypt.ID{0xff}); len(got) != 10+2+64 || got[len(got)-32] != 0xff {
		t.Fatal("delta blob associated data must end with the base ID")
	}
}

func TestGoldenHeader(t *testing.T) {
	mk := testKey()
	_, entries := specPack(t, mk, testSalt(), goldenBlobs(mk))
	if got := hex.EncodeToString(EncodeHeader(entries)); got != goldenHeader {
		t.Fatalf("pack header encoding changed:\n got %s\nwant %s", got, goldenHeader)
	}
}

func TestGoldenPack(t *testing.T) {
	mk := testKey()
	p, entries := specPack(t, mk, testSalt(), goldenBlobs(mk))
	if got := hex.EncodeToString(p); got != goldenPack {
		t.Fatalf("pack bytes changed:\n got %s\nwant %s", got, goldenPack)
	}
	salt, got, err := ReadHeader(bytes.NewReader(p), int64(len(p)), mk.Subkey)
	if err != nil {
		t.Fatal(err)
	}
	if salt != testSalt() || fmt.Sprint(got) != fmt.Sprint(entries) {
		t.Fatalf("ReadHeader: salt %x, entries %+v; want %+v", salt, got, entries)
	}
}

// TestWriterFollowsSpec checks that Writer produces exactly the bytes of the
// spec construction with the salt it drew, so the golden pack pins it too.
func TestWriterFollowsSpec(t *testing.T) {
	mk := testKey()
	blobs := goldenBlobs(mk)
	w, err := NewWriter(mk, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blobs {
		e, err := w.Add(b.t, b.enc, blobID(mk, b), b.base, b.encoded, b.raw)
		if err != nil {
			t.Fatal(err)
		}
		if w.Count() != i+1 || int64(w.Size()) != e.Offset+e.Length {
			t.Fatalf("after blob %d: count %d, size %d, entry %+v", i, w.Count(), w.Size(), e)
		}
	}
	got, gotEntries, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	want, wantEntries := specPack(t, mk, w.Salt(), blobs)
	if !bytes.Equal(got, want) {
		t.Fatal("Writer output differs from the FORMAT.md construction")
	}
	if fmt.Sprint(gotEntries) != fmt.Sprint(wantEntries) {
		t.Fatalf("entries %+v, want %+v", gotEntries, wantEntries)
	}
	s, err := mk.Subkey(w.Salt())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range gotEntries {
		plain, err := OpenBlob(s, e, nil, got[e.Offset:e.Offset+e.Length])
		if err != nil || !bytes.Equal(plain, blobs[i].encoded) {
			t.Fatalf("OpenBlob %d: %q, %v", i, plain, err)
		}
	}
}

func TestWriterEmptyPack(t *testing.T) {
	mk := testKey()
	w, err := NewWriter(mk, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, entries, err := w.Finalize()
	if err != nil || len(entries) != 0 {
		t.Fatalf("finalize empty: %d entries, %v", len(entries), err)
	}
	if _, got, err := ReadHeader(bytes.NewReader(p), int64(len(p)), mk.Subkey); err != nil || len(got) != 0 {
		t.Fatalf("read empty pack: %d entries, %v", len(got), err)
	}
}

func TestWriterMisuse(t *testing.T) {
	mk := testKey()
	w, _ := NewWriter(mk, 0)
	if _, err := w.Add(BlobType(9), Raw, crypt.ID{}, crypt.ID{}, []byte("x"), 1); err == nil {
		t.Fatal("Add accepted an unknown blob type")
	}
	if _, err := w.Add(DataBlob, Raw, crypt.ID{}, crypt.ID{}, []byte("x"), 1); err == nil {
		t.Fatal("a failed writer accepted another blob")
	}
	if _, _, err := w.Finalize(); err == nil {
		t.Fatal("a failed writer finalized")
	}

	w, _ = NewWriter(mk, 0)
	if _, err := w.Add(DataBlob, Encoding(3), crypt.ID{}, crypt.ID{}, []byte("x"), 1); err == nil {
		t.Fatal("Add accepted an unknown encoding")
	}

	w, _ = NewWriter(mk, 0)
	if _, _, err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finalize(); err == nil {
		t.Fatal("Finalize twice succeeded")
	}
	if _, err := w.Add(DataBlob, Raw, crypt.ID{}, crypt.ID{}, []byte("x"), 1); err == nil {
		t.Fatal("Add after Finalize succeeded")
	}
}

// TestOpenBlobBinding checks that a sealed blob opens only under its own
// type, encoding, ID, base, offset and length.
func TestOpenBlobBinding(t *testing.T) {
	mk := testKey()
	blobs := goldenBlobs(mk)
	p, entries := specPack(t, mk, testSalt(), blobs)
	s, _ := mk.Subkey(testSalt())
	e := entries[2] // the delta blob: every field is bound
	sealed := p[e.Offset : e.Offset+e.Length]
	if _, err := OpenBlob(s, e, nil, sealed); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Entry){
		"type":   func(e *Entry) { e.Type = TreeBlob },
		"enc":    func(e *Entry) { e.Enc = Zstd },
		"id":     func(e *Entry) { e.ID[0] ^= 1 },
		"base":   func(e *Entry) { e.Base[31] ^= 1 },
		"offset": func(e *Entry) { e.Offset++ },
	} {
		f := e
		mod(&f)
		if _, err := OpenBlob(s, f, nil, sealed); !errors.Is(err, crypt.ErrAuth) {
			t.Errorf("%s changed: got %v, want crypt.ErrAuth", name, err)
		}
	}
	f := e
	f.Length--
	if _, err := OpenBlob(s, f, nil, sealed); !errors.Is(err, ErrCorrupt) {
		t.Errorf("length changed: got %v, want ErrCorrupt", err)
	}
	other, _ := mk.Subkey([crypt.SaltSize]byte{1})
	if _, err := OpenBlob(other, e, nil, sealed); !errors.Is(err, crypt.ErrAuth) {
		t.Errorf("other subkey: got %v, want crypt.ErrAuth", err)
	}
}

func TestDecodeHeaderCorrupt(t *testing.T) {
	mk := testKey()
	p, entries := specPack(t, mk, testSalt(), goldenBlobs(mk))
	hdr := EncodeHeader(entries)
	end := entries[2].Offset + entries[2].Length
	if _, err := DecodeHeader(hdr, end); err != nil {
		t.Fatal(err)
	}
	_ = p
	entry := func(t BlobType, enc Encoding, length, raw uint64) []byte {
		b := append([]byte{byte(t), byte(enc)}, make([]byte, crypt.IDSize)...)
		if enc == DeltaZstd {
			b = append(b, make([]byte, crypt.IDSize)...)
		}
		b = binary.AppendUvarint(b, length)
		return binary.AppendUvarint(b, raw)
	}
	one := func(e []byte) []byte { return append([]byte{1}, e...) }
	cases := []struct {
		name string
		b    []byte
		end  int64
	}{
		{"empty", nil, PreambleSize},
		{"count too big", binary.AppendUvarint(nil, MaxCount+1), PreambleSize},
		{"huge count", binary.AppendUvarint(nil, math.MaxUint64), PreambleSize},
		{"count past data", []byte{5}, PreambleSize},
		{"trailing byte", append(bytes.Clone(hdr), 0), end},
		{"blobs end early", hdr, end + 1},
		{"blobs end late", hdr, end - 1},
		{"unknown type", one(entry(0, Raw, 16, 0)), PreambleSize + 16},
		{"unknown encoding", one(entry(DataBlob, 3, 16, 0)), PreambleSize + 16},
		{"length below overhead", one(entry(DataBlob, Raw, 15, 0)), PreambleSize + 15},
		{"length too big", one(entry(DataBlob, Raw, MaxBlobSize+1, 0)), PreambleSize + MaxBlobSize + 1},
		{"raw length too big", one(entry(DataBlob, Raw, 16, MaxBlobSize+1)), PreambleSize + 16},
		{"length overflows", one(entry(DataBlob, Raw, math.MaxUint64, 0)), math.MaxInt64},
		{"data end before preamble", []byte{0}, 0},
	}
	for i := range len(hdr) {
		cases = append(cases, struct {
			name string
			b    []byte
			end  int64
		}{fmt.Sprintf("truncated to %d", i), hdr[:i], end})
	}
	for _, tc := range cases {
		if _, err := DecodeHeader(tc.b, tc.end); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", tc.name, err)
		}
	}
}

// TestReadHeaderCorrupt damages every byte of the frame of a pack (its
// preamble, sealed header and trailer) and truncates it at every length:
// ReadHeader must fail, never return entries.
func TestReadHeaderCorrupt(t *testing.T) {
	mk := testKey()
	p, entries := specPack(t, mk, testSalt(), goldenBlobs(mk))
	blobsEnd := int(entries[2].Offset + entries[2].Length)
	check := func(name string, b []byte) {
		t.Helper()
		_, got, err := ReadHeader(bytes.NewReader(b), int64(len(b)), mk.Subkey)
		if err == nil {
			t.Errorf("%s: ReadHeader succeeded with %d entries", name, len(got))
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, crypt.ErrAuth) {
			t.Errorf("%s: got %v, want ErrCorrupt or crypt.ErrAuth", name, err)
		}
	}
	for i := range len(p) {
		if i >= PreambleSize && i < blobsEnd {
			continue // blob bytes: the header does not cover them
		}
		for bit := range 8 {
			b := bytes.Clone(p)
			b[i] ^= 1 << bit
			check(fmt.Sprintf("bit %d of byte %d", bit, i), b)
		}
	}
	for n := range len(p) {
		check(fmt.Sprintf("truncated to %d", n), p[:n])
	}
	check("extra byte", append(bytes.Clone(p), 0))
	check("extra byte before trailer", append(append(bytes.Clone(p[:len(p)-4]), 0), p[len(p)-4:]...))
	other := testKey()
	other.Encrypt[0] ^= 1
	if _, _, err := ReadHeader(bytes.NewReader(p), int64(len(p)), other.Subkey); !errors.Is(err, crypt.ErrAuth) {
		t.Errorf("other key: got %v, want crypt.ErrAuth", err)
	}
}

func TestTypeNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{DataBlob.String(), "data"}, {TreeBlob.String(), "tree"}, {BlobType(7).String(), "type(7)"},
		{Raw.String(), "raw"}, {Zstd.String(), "zstd"}, {DeltaZstd.String(), "delta-zstd"}, {Encoding(9).String(), "enc(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if BlobType(0).Valid() || BlobType(3).Valid() || !DataBlob.Valid() || !TreeBlob.Valid() {
		t.Error("BlobType.Valid is wrong")
	}
	if Encoding(3).Valid() || !DeltaZstd.Valid() {
		t.Error("Encoding.Valid is wrong")
	}
}
