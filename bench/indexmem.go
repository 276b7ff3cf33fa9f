package main

import (
	"math/rand/v2"
	"runtime"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
)

// indexBytesPerBlob builds an in-memory index of n synthetic blobs in packs
// of 1000, as loading a repository does, and returns its heap bytes per blob.
func indexBytesPerBlob(n int) float64 {
	rng := rand.New(rand.NewPCG(1, 1))
	id := func() (x crypt.ID) {
		for i := 0; i < len(x); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				x[i+j] = byte(v >> (8 * j))
			}
		}
		return x
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	x := index.New()
	blobs := make([]pack.Entry, 1000)
	for done := 0; done < n; done += len(blobs) {
		off := int64(pack.PreambleSize)
		for i := range blobs {
			blobs[i] = pack.Entry{Type: pack.DataBlob, Enc: pack.Zstd, ID: id(), Offset: off, Length: 200 << 10, RawLength: 512 << 10}
			off += blobs[i].Length
		}
		_ = x.AddPack(index.Pack{ID: id(), Size: off + 1024}, blobs)
	}
	x.Compact()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
