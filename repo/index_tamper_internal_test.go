package repo

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/restic/chunker"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// TestForgedIndexEntries rewrites the index with the right key but entries
// that point at the wrong bytes: two entries swapped, an entry moved to
// another pack, a changed type, encoding or length. A blob is bound to its
// ID, type, encoding and offset, so restore must fail with a *BlobError
// matching ErrCorrupt rather than return wrong data.
func TestForgedIndexEntries(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	pw := []byte("pw")
	cp := chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: chunker.Pol(0x3DA3358B4DC173),
		MinSize: 1 << 10, MaxSize: 4 << 10, AverageBits: 20}
	r, err := Init(ctx, be, pw, InitOptions{KDF: crypt.TestKDF, PackSize: 1 << 20, Chunker: &cp})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var seed [32]byte
	data := make([]byte, 64<<10)
	rand.NewChaCha8(seed).Read(data)
	snap, err := r.SnapshotStream(ctx, bytes.NewReader(data), SnapshotOptions{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	idxNames, err := listNames(ctx, be, store.IndexFile)
	if err != nil || len(idxNames) != 1 {
		t.Fatalf("want one index file, have %d (%v)", len(idxNames), err)
	}
	orig, err := r.LoadIndexFile(ctx, idxNames[0])
	if err != nil {
		t.Fatal(err)
	}

	// where finds the data pack and two of its data blobs of equal length.
	where := func(f *index.File) (p int, a, b int) {
		for pi, pb := range f.Packs {
			for i := range pb.Blobs {
				for j := i + 1; j < len(pb.Blobs); j++ {
					if pb.Blobs[i].Type == pack.DataBlob && pb.Blobs[i].Length == pb.Blobs[j].Length {
						return pi, i, j
					}
				}
			}
		}
		t.Fatal("setup: no two data blobs of equal length in one pack")
		return
	}
	pi, ai, bi := where(orig)
	other := 1 - pi // the tree pack
	if len(orig.Packs) != 2 {
		t.Fatalf("setup: %d packs, want a data pack and a tree pack", len(orig.Packs))
	}

	for _, tc := range []struct {
		name   string
		forge  func(f *index.File) (victims []crypt.ID)
		inPack int // index into f.Packs of the pack the error must name
	}{
		{"swap offsets", func(f *index.File) []crypt.ID {
			e := f.Packs[pi].Blobs
			e[ai].Offset, e[bi].Offset = e[bi].Offset, e[ai].Offset
			return []crypt.ID{e[ai].ID, e[bi].ID}
		}, pi},
		{"swap IDs", func(f *index.File) []crypt.ID {
			e := f.Packs[pi].Blobs
			e[ai].ID, e[bi].ID = e[bi].ID, e[ai].ID
			return []crypt.ID{e[ai].ID, e[bi].ID}
		}, pi},
		{"move to the other pack", func(f *index.File) []crypt.ID {
			e := f.Packs[pi].Blobs[ai]
			f.Packs[pi].Blobs = append(f.Packs[pi].Blobs[:ai], f.Packs[pi].Blobs[ai+1:]...)
			e.Offset = pack.PreambleSize
			f.Packs[other].Size += e.Length // keep Decode's bounds check happy
			f.Packs[other].Blobs = append(f.Packs[other].Blobs, e)
			return []crypt.ID{e.ID}
		}, other},
		{"use the other pack's salt", func(f *index.File) []crypt.ID {
			f.Packs[pi].Salt = f.Packs[other].Salt
			return nil
		}, pi},
		{"claim zstd", func(f *index.File) []crypt.ID {
			e := &f.Packs[pi].Blobs[ai]
			e.Enc = pack.Zstd
			return []crypt.ID{e.ID}
		}, pi},
		{"claim tree", func(f *index.File) []crypt.ID {
			e := &f.Packs[pi].Blobs[ai]
			e.Type = pack.TreeBlob
			return []crypt.ID{e.ID}
		}, pi},
		{"wrong raw length", func(f *index.File) []crypt.ID {
			e := &f.Packs[pi].Blobs[ai]
			e.RawLength--
			return []crypt.ID{e.ID}
		}, pi},
		{"wrong sealed length", func(f *index.File) []crypt.ID {
			e := &f.Packs[pi].Blobs[ai]
			e.Length--
			return []crypt.ID{e.ID}
		}, pi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := index.Decode(index.Encode(orig)) // a deep copy
			if err != nil {
				t.Fatal(err)
			}
			victims := tc.forge(f)
			packID := f.Packs[tc.inPack].ID

			fbe := mem.New()
			for _, ft := range store.AllTypes {
				names, _ := listNames(ctx, be, ft)
				if ft == store.ConfigFile {
					names = []string{""}
				}
				for _, n := range names {
					h := store.Handle{Type: ft, Name: n}
					if ft == store.IndexFile {
						continue
					}
					b, err := store.ReadAll(ctx, be, h)
					if err != nil {
						t.Fatal(err)
					}
					if err := fbe.Put(ctx, h, bytes.NewReader(b), int64(len(b))); err != nil {
						t.Fatal(err)
					}
				}
			}
			w := &Repository{be: fbe, key: r.key, cfg: r.cfg, enc: r.enc, dec: r.dec}
			if _, err := w.saveIndex(ctx, f); err != nil {
				t.Fatal(err)
			}

			r2, err := Open(ctx, fbe, pw, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			var out bytes.Buffer
			err = r2.RestoreStream(ctx, snap, &out, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore: got %v, want ErrCorrupt", err)
			}
			var be *BlobError
			if !errors.As(err, &be) {
				t.Fatalf("restore: %v is not a *BlobError", err)
			}
			if be.Pack != packID {
				t.Errorf("BlobError names pack %s, want %s", be.Pack.Short(), packID.Short())
			}
			if len(victims) > 0 && be.Blob != victims[0] && (len(victims) < 2 || be.Blob != victims[1]) {
				t.Errorf("BlobError names blob %s, want one of the forged entries", be.Blob.Short())
			}
		})
	}
}
