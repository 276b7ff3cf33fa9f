package index

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
)

// Pack is what the index records about one pack file.
type Pack struct {
	ID   crypt.ID
	Salt [crypt.SaltSize]byte
	Size int64
}

// Location says where one blob is stored.
type Location struct {
	Pack  Pack
	Entry pack.Entry
}

// entry is the compact in-memory form of one blob: 52 bytes.
type entry struct {
	id     crypt.ID
	pack   uint32
	offset uint32
	length uint32
	raw    uint32
	typ    pack.BlobType
	enc    pack.Encoding
}

// Index is the in-memory blob index. It is safe for concurrent use.
//
// Entries live in one slice: a sorted prefix searched by binary search and a
// short unsorted tail of recent additions found through a small map. The tail
// is merged into the prefix when it grows, so memory stays near 52 bytes per
// blob plus the pack table.
type Index struct {
	mu      sync.RWMutex
	packs   []Pack
	packPos map[crypt.ID]uint32
	entries []entry
	sorted  int                   // entries[:sorted] is sorted by id
	tail    map[crypt.ID]int      // id → position in entries[sorted:]
	bases   map[crypt.ID]crypt.ID // delta blobs → base (rare)
}

// New returns an empty index.
func New() *Index {
	return &Index{packPos: map[crypt.ID]uint32{}, tail: map[crypt.ID]int{}, bases: map[crypt.ID]crypt.ID{}}
}

// AddPack records the blobs of one stored pack. Offsets and lengths fit in
// 32 bits because packs are far smaller than 4 GiB.
func (x *Index) AddPack(p Pack, blobs []pack.Entry) error {
	if p.Size > math.MaxUint32 {
		return fmt.Errorf("pack %s: size %d exceeds 4 GiB", p.ID.Short(), p.Size)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	pos, ok := x.packPos[p.ID]
	if !ok {
		if len(x.packs) >= math.MaxUint32 {
			return errors.New("index: more than 2^32 packs")
		}
		pos = uint32(len(x.packs))
		x.packs = append(x.packs, p)
		x.packPos[p.ID] = pos
	}
	for _, b := range blobs {
		x.entries = append(x.entries, entry{id: b.ID, pack: pos, offset: uint32(b.Offset),
			length: uint32(b.Length), raw: uint32(b.RawLength), typ: b.Type, enc: b.Enc})
		x.tail[b.ID] = len(x.entries) - 1
		if b.Enc == pack.DeltaZstd {
			x.bases[b.ID] = b.Base
		}
	}
	if len(x.tail) > max(4096, x.sorted/8) {
		x.compactLocked()
	}
	return nil
}

// AddFile records every pack of a decoded index file.
func (x *Index) AddFile(f *File) error {
	for _, p := range f.Packs {
		if err := x.AddPack(Pack{ID: p.ID, Salt: p.Salt, Size: p.Size}, p.Blobs); err != nil {
			return err
		}
	}
	return nil
}

// Compact sorts all entries and releases spare capacity. Call it after bulk loading.
func (x *Index) Compact() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.compactLocked()
	if cap(x.entries) > len(x.entries) {
		x.entries = append([]entry(nil), x.entries...)
	}
}

func (x *Index) compactLocked() {
	slices.SortStableFunc(x.entries, func(a, b entry) int { return bytes.Compare(a.id[:], b.id[:]) })
	x.sorted = len(x.entries)
	x.tail = make(map[crypt.ID]int) // a cleared map would keep its buckets
}

func (x *Index) find(id crypt.ID) (int, bool) {
	if i, ok := x.tail[id]; ok {
		return i, true
	}
	i, ok := slices.BinarySearchFunc(x.entries[:x.sorted], id, func(e entry, id crypt.ID) int {
		return bytes.Compare(e.id[:], id[:])
	})
	return i, ok
}

// Has reports whether the blob is indexed.
func (x *Index) Has(id crypt.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.find(id)
	return ok
}

// Lookup returns where the blob is stored.
func (x *Index) Lookup(id crypt.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i, ok := x.find(id)
	if !ok {
		return Location{}, false
	}
	return x.location(x.entries[i]), true
}

func (x *Index) location(e entry) Location {
	l := Location{Pack: x.packs[e.pack], Entry: pack.Entry{Type: e.typ, Enc: e.enc, ID: e.id,
		Offset: int64(e.offset), Length: int64(e.length), RawLength: int64(e.raw)}}
	if e.enc == pack.DeltaZstd {
		l.Entry.Base = x.bases[e.id]
	}
	return l
}

// Len returns the number of indexed blob copies.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

// Packs returns the pack table.
func (x *Index) Packs() []Pack {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.packs)
}

// Each calls fn for every indexed blob copy, in no particular order. fn must
// not call back into the index.
func (x *Index) Each(fn func(Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.entries {
		fn(x.location(e))
	}
}
