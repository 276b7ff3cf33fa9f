package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/blobcache"
	"github.com/bk-backup/bk/repo/delta"
	"github.com/bk-backup/bk/repo/pack"
)

const (
	// maxPrevChunks bounds the memory spent on the previous snapshot's chunk
	// list (about 56 bytes per chunk): 2^21 chunks cover a 1 TiB dump at the
	// default chunk size. Larger streams are stored without deltas.
	maxPrevChunks = 1 << 21
	// headLen is how many leading bytes of a chunk its head fingerprint covers.
	headLen = 64
)

// headOf fingerprints the first bytes of a chunk (FORMAT.md §7).
func (r *Repository) headOf(data []byte) uint64 {
	id := r.key.BlobID(data[:min(headLen, len(data))])
	return binary.LittleEndian.Uint64(id[:8])
}

// prevStream is the chunk list of the previous snapshot of a source, and
// the alignment between it and the stream being written. It is used by the
// collector goroutine only.
type prevStream struct {
	snapshot crypt.ID
	ids      []crypt.ID
	ends     []int64  // cumulative end offset of each chunk
	heads    []uint64 // head fingerprint of each chunk (0: unknown, version 1 trees)
	byID     []int32  // chunk indexes sorted by ID
	byHead   []headAt // chunk indexes sorted by head

	anchored              bool
	anchorCur, anchorPrev int64 // an offset in the current stream and the matching one in prev
}

type headAt struct {
	head uint64
	i    int32
}

// previousStream loads the chunk list of the stream with tree root of
// snapshot snap, the newest earlier snapshot of the same source. It returns
// nil when the list is too large.
func (r *Repository) previousStream(ctx context.Context, snap, root crypt.ID) (*prevStream, error) {
	p := &prevStream{snapshot: snap}
	var heads []headAt
	var off int64
	err := r.walkTree(ctx, root, -1, func(e TreeEntry) error {
		if len(p.ids) >= maxPrevChunks {
			return errStop
		}
		off += e.Size
		p.ids = append(p.ids, e.ID)
		p.ends = append(p.ends, off)
		p.heads = append(p.heads, e.Head)
		if e.Head != 0 {
			heads = append(heads, headAt{e.Head, int32(len(p.ids) - 1)})
		}
		return nil
	})
	if err == errStop {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the previous snapshot %s for delta bases: %w", snap.Short(), err)
	}
	p.byID = make([]int32, len(p.ids))
	for i := range p.byID {
		p.byID[i] = int32(i)
	}
	slices.SortFunc(p.byID, func(a, b int32) int { return bytes.Compare(p.ids[a][:], p.ids[b][:]) })
	slices.SortFunc(heads, func(a, b headAt) int {
		if a.head != b.head {
			return cmpU64(a.head, b.head)
		}
		return int(a.i - b.i)
	})
	p.byHead = heads
	return p, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// seen tells the alignment that the chunk at [off, off+size) of the current
// stream is stored already; if prev has it, it becomes the anchor.
func (p *prevStream) seen(id crypt.ID, off, size int64) {
	i, ok := slices.BinarySearchFunc(p.byID, id, func(k int32, id crypt.ID) int {
		return bytes.Compare(p.ids[k][:], id[:])
	})
	if ok {
		p.anchored, p.anchorCur, p.anchorPrev = true, off+size, p.ends[p.byID[i]]
	}
}

// base picks the delta base for a new chunk at [off, off+size) with head
// fingerprint head: the chunk at the same place in prev, aligned on the
// nearest chunk before it that matched (stored already or delta-coded), or
// by offset before any match. When that chunk's head differs, the nearest
// chunk of prev with the same head wins: content-defined boundaries make
// corresponding chunks start alike, which realigns after an edit moved a
// boundary.
func (p *prevStream) base(off, size int64, head uint64) crypt.ID {
	if len(p.ids) == 0 {
		return crypt.ID{}
	}
	target := off
	if p.anchored {
		target = p.anchorPrev + (off - p.anchorCur)
	}
	k := sort.Search(len(p.ends), func(i int) bool { return p.ends[i] > target })
	k = min(k, len(p.ids)-1)
	if p.heads[k] != head {
		if j, ok := p.nearestHead(head, k); ok {
			k = j
		}
	}
	p.anchored, p.anchorCur, p.anchorPrev = true, off+size, p.ends[k]
	return p.ids[k]
}

// nearestHead returns the chunk with the given head closest to k.
func (p *prevStream) nearestHead(head uint64, k int) (int, bool) {
	lo := sort.Search(len(p.byHead), func(i int) bool { return p.byHead[i].head >= head })
	best, found := 0, false
	for i := lo; i < len(p.byHead) && p.byHead[i].head == head; i++ {
		j := int(p.byHead[i].i)
		if !found || abs(j-k) < abs(best-k) {
			best, found = j, true
		}
	}
	return best, found
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// chainOf returns how many delta links lie below blob id and the chunk
// stored whole at the bottom of its chain.
func (r *Repository) chainOf(id crypt.ID) (depth int, root crypt.ID, ok bool) {
	root = id
	for depth <= maxChainDecode {
		loc, found := r.idx.Lookup(root)
		if !found {
			return 0, root, false
		}
		if loc.Entry.Enc != pack.DeltaZstd {
			return depth, root, true
		}
		root = loc.Entry.Base
		depth++
	}
	return 0, root, false
}

// deltaWork is one encoding worker's scratch space.
type deltaWork struct {
	enc     delta.Encoder
	prog    []byte
	full    []byte
	outs    [2][]byte
	base    []byte
	scratch []byte
}

// encodeNew encodes a new chunk: as a delta against the best of the
// candidate bases when that is much smaller than the chunk compressed
// alone, otherwise compressed whole. A candidate past the depth cap is
// replaced by the root of its chain; a candidate that cannot be read is
// skipped. The second candidate is only tried when the first is not
// already good: it catches a chunk that an edit split off the previous one.
func (s *session) encodeNew(w *deltaWork, cache *blobcache.Cache, plain []byte, candidates ...crypt.ID) (pack.Encoding, crypt.ID, []byte) {
	r := s.r
	var best []byte
	var bestBase crypt.ID
	cur := 0
	if len(plain) >= 4*delta.MinMatch {
		for _, base := range candidates {
			if base.IsNull() || base == bestBase {
				continue
			}
			depth, root, ok := r.chainOf(base)
			if !ok {
				continue
			}
			if depth+1 > r.cfg.Delta.MaxDepth {
				base = root
			}
			bp, scratch, err := r.loadBlobFrom(s.ctx, cache, pack.DataBlob, base, w.base, w.scratch)
			w.scratch = scratch
			if err != nil {
				continue
			}
			w.base = bp[:0]
			w.prog = w.enc.Encode(w.prog[:0], bp, plain)
			out := r.enc.EncodeAll(w.prog, w.outs[cur][:0])
			w.outs[cur] = out[:0]
			if best == nil || len(out) < len(best) {
				best, bestBase = out, base
				cur ^= 1 // keep best; encode the next candidate into the other buffer
			}
			// Much smaller: a sixteenth of the raw chunk is accepted at once
			// (dumps compress about 4x, so that is a quarter of the whole
			// chunk compressed).
			if len(best) <= len(plain)/16 {
				return pack.DeltaZstd, bestBase, best
			}
		}
	}
	enc, full := r.encodeBlob(w.full, plain)
	if enc == pack.Zstd {
		w.full = full[:0]
	}
	// Otherwise a delta must at least halve the compressed size.
	if best != nil && len(best) < len(full)/2 {
		return pack.DeltaZstd, bestBase, best
	}
	return enc, crypt.ID{}, full
}
