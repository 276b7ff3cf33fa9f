package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store"
)

// Encoding bytes at the start of a sealed file's plaintext (FORMAT.md §3).
const (
	fileRaw  = 0x00
	fileZstd = 0x01
)

// sealFile encodes (optionally compresses) and seals plaintext as a file of kind.
func (r *Repository) sealFile(kind string, plain []byte, compress bool) ([]byte, error) {
	var buf []byte
	if compress {
		buf = append([]byte{fileZstd}, r.enc.EncodeAll(plain, make([]byte, 0, len(plain)/2+64))...)
	} else {
		buf = append([]byte{fileRaw}, plain...)
	}
	return r.key.SealFile(kind, buf)
}

// openFile opens a sealed file of kind and decodes it, refusing to produce
// more than maxSize bytes.
func (r *Repository) openFile(kind string, sealed []byte, maxSize int) ([]byte, error) {
	buf, err := r.key.OpenFile(kind, sealed)
	if err != nil {
		return nil, corrupt(err, "%s file", kind)
	}
	if len(buf) == 0 {
		return nil, corrupt(nil, "%s file: no encoding byte", kind)
	}
	switch buf[0] {
	case fileRaw:
		if len(buf)-1 > maxSize {
			return nil, corrupt(nil, "%s file: %d bytes exceeds %d", kind, len(buf)-1, maxSize)
		}
		return buf[1:], nil
	case fileZstd:
		out, err := r.dec.DecodeAll(buf[1:], nil)
		if err != nil {
			return nil, corrupt(err, "%s file: decompress", kind)
		}
		if len(out) > maxSize {
			return nil, corrupt(nil, "%s file: %d bytes exceeds %d", kind, len(out), maxSize)
		}
		return out, nil
	}
	return nil, corrupt(nil, "%s file: unknown encoding %d", kind, buf[0])
}

// saveFile seals plaintext and stores it under the hash of the sealed bytes.
func (r *Repository) saveFile(ctx context.Context, t store.FileType, kind string, plain []byte, compress bool) (crypt.ID, error) {
	sealed, err := r.sealFile(kind, plain, compress)
	if err != nil {
		return crypt.ID{}, err
	}
	id := crypt.Hash(sealed)
	h := store.Handle{Type: t, Name: id.String()}
	if err := r.be.Put(ctx, h, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		return crypt.ID{}, fmt.Errorf("save %s: %w", h, err)
	}
	return id, nil
}

// loadFile reads a sealed file, checks it against its name and opens it.
func (r *Repository) loadFile(ctx context.Context, h store.Handle, kind string, maxSize int) ([]byte, error) {
	sealed, err := store.ReadAll(ctx, r.be, h)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", h, err)
		}
		return nil, fmt.Errorf("read %s: %w", h, err)
	}
	if got := crypt.Hash(sealed).String(); got != h.Name {
		return nil, corrupt(nil, "%s: content hash is %s", h, got[:8])
	}
	plain, err := r.openFile(kind, sealed, maxSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h, err)
	}
	return plain, nil
}
