package index

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
)

func randomID(rng *rand.Rand) crypt.ID {
	var id crypt.ID
	for i := range id {
		id[i] = byte(rng.Uint32())
	}
	return id
}

// packOf returns a pack with n random blobs.
func packOf(rng *rand.Rand, n int) (Pack, []pack.Entry) {
	p := Pack{ID: randomID(rng), Size: 16 << 20}
	blobs := make([]pack.Entry, n)
	off := int64(pack.PreambleSize)
	for i := range blobs {
		blobs[i] = pack.Entry{Type: pack.DataBlob, Enc: pack.Zstd, ID: randomID(rng), Offset: off, Length: 1000 + int64(i), RawLength: 4000}
		off += blobs[i].Length
	}
	return p, blobs
}

func TestEntrySize(t *testing.T) {
	// The in-memory index must stay within 64 bytes per blob (issue 2).
	if s := unsafe.Sizeof(entry{}); s > 52 {
		t.Fatalf("index entry is %d bytes, want at most 52", s)
	}
}

func TestLookupAcrossTailAndSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := New()
	var all []Location
	for range 50 { // 50 packs × 200 blobs: crosses several tail merges
		p, blobs := packOf(rng, 200)
		if err := x.AddPack(p, blobs); err != nil {
			t.Fatal(err)
		}
		for _, b := range blobs {
			all = append(all, Location{Pack: p, Entry: b})
		}
		// Every blob added so far is found, wherever it lives.
		for _, want := range all[len(all)-200:] {
			got, ok := x.Lookup(want.Entry.ID)
			if !ok || got != want {
				t.Fatalf("lookup %s: got %+v %v, want %+v", want.Entry.ID.Short(), got, ok, want)
			}
		}
	}
	x.Compact()
	if x.Len() != len(all) {
		t.Fatalf("len %d, want %d", x.Len(), len(all))
	}
	for _, want := range all {
		if got, ok := x.Lookup(want.Entry.ID); !ok || got != want {
			t.Fatalf("after compact, lookup %s: got %+v %v", want.Entry.ID.Short(), got, ok)
		}
	}
	if x.Has(randomID(rng)) {
		t.Fatal("found a blob that was never added")
	}
	n := 0
	x.Each(func(Location) { n++ })
	if n != len(all) || len(x.Packs()) != 50 {
		t.Fatalf("Each saw %d blobs and %d packs", n, len(x.Packs()))
	}
}

func TestDeltaBaseKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p, blobs := packOf(rng, 3)
	blobs[1].Enc, blobs[1].Base = pack.DeltaZstd, randomID(rng)
	x := New()
	if err := x.AddPack(p, blobs); err != nil {
		t.Fatal(err)
	}
	x.Compact()
	got, _ := x.Lookup(blobs[1].ID)
	if got.Entry.Base != blobs[1].Base || got.Entry.Enc != pack.DeltaZstd {
		t.Fatalf("delta entry lost its base: %+v", got.Entry)
	}
}

func TestFileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := &File{Supersedes: []crypt.ID{randomID(rng)}}
	for range 3 {
		p, blobs := packOf(rng, 5)
		blobs[2].Enc, blobs[2].Base = pack.DeltaZstd, randomID(rng)
		f.Packs = append(f.Packs, PackBlobs{ID: p.ID, Salt: [32]byte(randomID(rng)), Size: p.Size, Blobs: blobs})
	}
	got, err := Decode(Encode(f))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Packs) != 3 || got.Supersedes[0] != f.Supersedes[0] {
		t.Fatalf("round trip lost packs or supersedes: %+v", got)
	}
	for i := range f.Packs {
		a, b := f.Packs[i], got.Packs[i]
		if a.ID != b.ID || a.Salt != b.Salt || a.Size != b.Size || len(a.Blobs) != len(b.Blobs) {
			t.Fatalf("pack %d differs", i)
		}
		for j := range a.Blobs {
			if a.Blobs[j] != b.Blobs[j] {
				t.Fatalf("pack %d blob %d: %+v != %+v", i, j, a.Blobs[j], b.Blobs[j])
			}
		}
	}
	// Every truncation is rejected, never a panic.
	enc := Encode(f)
	for n := range len(enc) {
		if _, err := Decode(enc[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: accepted", n, len(enc))
		}
	}
}

// BenchmarkIndexMemory reports the heap bytes per blob of a loaded index.
func BenchmarkIndexMemory(b *testing.B) {
	const packs, perPack = 1000, 1000 // one million blobs
	rng := rand.New(rand.NewPCG(7, 8))
	input := make([][]pack.Entry, packs)
	pk := make([]Pack, packs)
	for i := range input {
		pk[i], input[i] = packOf(rng, perPack)
	}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x := New()
		for i := range input {
			_ = x.AddPack(pk[i], input[i])
		}
		x.Compact()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(packs*perPack), "bytes/blob")
		runtime.KeepAlive(x)
	}
}
