package repo

import (
	"encoding/binary"
	"fmt"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/internal/binfmt"
)

// Tree format constants (FORMAT.md §7); part of the on-disk format.
// Version 2 adds each chunk's head fingerprint to level-0 entries; version 1
// nodes are still read.
const (
	TreeVersion = 2
	TreeFanout  = 4096
	maxTreeLvl  = 16
)

// TreeEntry is one child of a tree node: a data blob (level 0) or a tree
// blob of the level below, with the number of stream bytes it covers.
type TreeEntry struct {
	ID   crypt.ID `json:"id"`
	Size int64    `json:"size"`
	// Head fingerprints the first bytes of a data chunk (level 0 only), so
	// the next snapshot can find the matching chunk to delta against
	// without reading it.
	Head uint64 `json:"head,omitempty"`
}

// EncodeTree returns the plaintext of a tree node.
func EncodeTree(level int, entries []TreeEntry) []byte {
	b := make([]byte, 0, 8+len(entries)*(crypt.IDSize+12))
	b = append(b, TreeVersion, byte(level))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, e.ID[:]...)
		b = binary.AppendUvarint(b, uint64(e.Size))
		if level == 0 {
			b = binary.LittleEndian.AppendUint64(b, e.Head)
		}
	}
	return b
}

// DecodeTree parses a tree node.
func DecodeTree(b []byte) (level int, entries []TreeEntry, err error) {
	r := binfmt.NewReader(b)
	version := r.Byte()
	if r.Err() == nil && version != 1 && version != TreeVersion {
		return 0, nil, corrupt(nil, "tree version %d", version)
	}
	level = int(r.Byte())
	n := r.Uvarint()
	if r.Err() != nil {
		return 0, nil, corrupt(r.Err(), "tree")
	}
	if level > maxTreeLvl || n > TreeFanout {
		return 0, nil, corrupt(nil, "tree level %d with %d entries", level, n)
	}
	entries = make([]TreeEntry, n)
	for i := range entries {
		r.Bytes(entries[i].ID[:])
		s := r.Uvarint()
		if s > 1<<62 {
			return 0, nil, corrupt(nil, "tree entry size %d", s)
		}
		entries[i].Size = int64(s)
		if version >= 2 && level == 0 {
			var h [8]byte
			r.Bytes(h[:])
			entries[i].Head = binary.LittleEndian.Uint64(h[:])
		}
	}
	if r.Err() != nil {
		return 0, nil, corrupt(r.Err(), "tree")
	}
	if r.Len() != 0 {
		return 0, nil, corrupt(nil, "tree: %d trailing bytes", r.Len())
	}
	return level, entries, nil
}

// treeBuilder assembles the canonical tree of a stream (FORMAT.md §7).
type treeBuilder struct {
	levels [][]TreeEntry
	save   func(plain []byte) (crypt.ID, error)
}

func (b *treeBuilder) add(level int, e TreeEntry) error {
	if level >= maxTreeLvl {
		return fmt.Errorf("stream too large: tree deeper than %d levels", maxTreeLvl)
	}
	for len(b.levels) <= level {
		b.levels = append(b.levels, make([]TreeEntry, 0, TreeFanout))
	}
	b.levels[level] = append(b.levels[level], e)
	if len(b.levels[level]) < TreeFanout {
		return nil
	}
	return b.flush(level)
}

// flush stores the node of one level and hands it to the level above.
func (b *treeBuilder) flush(level int) error {
	entries := b.levels[level]
	var size int64
	for _, e := range entries {
		size += e.Size
	}
	id, err := b.save(EncodeTree(level, entries))
	if err != nil {
		return err
	}
	b.levels[level] = entries[:0]
	return b.add(level+1, TreeEntry{ID: id, Size: size})
}

// finish stores the partial nodes bottom-up and returns the root.
func (b *treeBuilder) finish() (crypt.ID, error) {
	if len(b.levels) == 0 {
		return b.save(EncodeTree(0, nil))
	}
	for l := 0; l < len(b.levels); l++ {
		if l == len(b.levels)-1 {
			if l > 0 && len(b.levels[l]) == 1 {
				return b.levels[l][0].ID, nil
			}
			return b.save(EncodeTree(l, b.levels[l]))
		}
		if len(b.levels[l]) > 0 {
			if err := b.flush(l); err != nil {
				return crypt.ID{}, err
			}
		}
	}
	return crypt.ID{}, fmt.Errorf("tree builder: no root")
}
