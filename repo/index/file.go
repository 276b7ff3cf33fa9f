package index

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/internal/binfmt"
	"github.com/bk-backup/bk/repo/pack"
)

// Format constants of index files; part of the on-disk format.
const (
	Magic   = "BKIX"
	Version = 1
	// MaxEntries caps the blobs one index file may list.
	MaxEntries = 1 << 26
)

// ErrCorrupt marks an index file that does not follow the format.
var ErrCorrupt = errors.New("corrupt index")

// PackBlobs lists the blobs stored in one pack.
type PackBlobs struct {
	ID    crypt.ID             `json:"id"`
	Salt  [crypt.SaltSize]byte `json:"-"`
	Size  int64                `json:"size"`
	Blobs []pack.Entry         `json:"-"`
}

// File is the decoded content of one index file.
type File struct {
	Supersedes []crypt.ID
	Packs      []PackBlobs
}

// Encode returns the binary encoding of f (before compression and sealing).
func Encode(f *File) []byte {
	n := 0
	for _, p := range f.Packs {
		n += len(p.Blobs)
	}
	b := make([]byte, 0, 16+len(f.Supersedes)*32+len(f.Packs)*80+n*48)
	b = append(b, Magic...)
	b = append(b, Version)
	b = binary.AppendUvarint(b, uint64(len(f.Supersedes)))
	for _, id := range f.Supersedes {
		b = append(b, id[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(f.Packs)))
	for _, p := range f.Packs {
		b = append(b, p.ID[:]...)
		b = append(b, p.Salt[:]...)
		b = binary.AppendUvarint(b, uint64(p.Size))
		b = binary.AppendUvarint(b, uint64(len(p.Blobs)))
		for _, e := range p.Blobs {
			b = append(b, byte(e.Type), byte(e.Enc))
			b = append(b, e.ID[:]...)
			if e.Enc == pack.DeltaZstd {
				b = append(b, e.Base[:]...)
			}
			b = binary.AppendUvarint(b, uint64(e.Offset))
			b = binary.AppendUvarint(b, uint64(e.Length))
			b = binary.AppendUvarint(b, uint64(e.RawLength))
		}
	}
	return b
}

// Decode parses an index file. It validates every field that a later reader
// relies on: known types and encodings, and blobs that lie inside their pack.
func Decode(b []byte) (*File, error) {
	if len(b) < len(Magic)+1 || string(b[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("bad magic: %w", ErrCorrupt)
	}
	if b[len(Magic)] != Version {
		return nil, fmt.Errorf("index version %d unknown: %w", b[len(Magic)], ErrCorrupt)
	}
	r := binfmt.NewReader(b[len(Magic)+1:])
	f := &File{}
	ns := r.Uvarint()
	if ns > uint64(r.Len()/crypt.IDSize) {
		return nil, fmt.Errorf("%d superseded indexes: %w", ns, ErrCorrupt)
	}
	f.Supersedes = make([]crypt.ID, ns)
	for i := range f.Supersedes {
		r.Bytes(f.Supersedes[i][:])
	}
	np := r.Uvarint()
	if np > uint64(r.Len()/(2*crypt.IDSize+2)) {
		return nil, fmt.Errorf("%d packs: %w", np, ErrCorrupt)
	}
	f.Packs = make([]PackBlobs, 0, np)
	total := uint64(0)
	for i := uint64(0); i < np && r.Err() == nil; i++ {
		var p PackBlobs
		r.Bytes(p.ID[:])
		r.Bytes(p.Salt[:])
		size, n := r.Uvarint(), r.Uvarint()
		total += n
		if r.Err() != nil {
			break
		}
		if size > 1<<40 || n > pack.MaxCount || total > MaxEntries || n > uint64(r.Len()/(2+crypt.IDSize+3)) {
			return nil, fmt.Errorf("pack %s: size %d, %d blobs: %w", p.ID.Short(), size, n, ErrCorrupt)
		}
		p.Size = int64(size)
		p.Blobs = make([]pack.Entry, 0, n)
		for j := uint64(0); j < n && r.Err() == nil; j++ {
			var e pack.Entry
			e.Type, e.Enc = pack.BlobType(r.Byte()), pack.Encoding(r.Byte())
			r.Bytes(e.ID[:])
			if e.Enc == pack.DeltaZstd {
				r.Bytes(e.Base[:])
			}
			off, l, raw := r.Uvarint(), r.Uvarint(), r.Uvarint()
			if r.Err() != nil {
				break
			}
			if !e.Type.Valid() || !e.Enc.Valid() || off < pack.PreambleSize || l < crypt.Overhead ||
				l > pack.MaxBlobSize || raw > pack.MaxBlobSize || off > size || l > size-off {
				return nil, fmt.Errorf("pack %s blob %s: %w", p.ID.Short(), e.ID.Short(), ErrCorrupt)
			}
			e.Offset, e.Length, e.RawLength = int64(off), int64(l), int64(raw)
			p.Blobs = append(p.Blobs, e)
		}
		f.Packs = append(f.Packs, p)
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", r.Err(), ErrCorrupt)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes: %w", r.Len(), ErrCorrupt)
	}
	return f, nil
}
