package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/bk-backup/bk/store"
)

// Backend is an in-memory store.Backend. The zero value is not usable; call
// New.
type Backend struct {
	mu    sync.RWMutex
	files map[store.Handle][]byte
}

var _ store.Backend = (*Backend)(nil)

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{files: make(map[store.Handle][]byte)}
}

// Location returns "mem".
func (b *Backend) Location() string { return "mem" }

// Put stores a copy of the size bytes rd yields. It fails, storing nothing,
// if rd yields fewer or more bytes.
func (b *Backend) Put(ctx context.Context, h store.Handle, rd io.ReadSeeker, size int64) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: invalid size %d", h, size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(rd, buf); err != nil {
		return fmt.Errorf("put %s: read %d bytes: %w", h, size, err)
	}
	var extra [1]byte
	if n, err := io.ReadFull(rd, extra[:]); n > 0 {
		return fmt.Errorf("put %s: reader yields more than %d bytes", h, size)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("put %s: read: %w", h, err)
	}
	b.mu.Lock()
	b.files[h] = buf
	b.mu.Unlock()
	return nil
}

// Get calls fn with a reader over a copy of the requested range.
func (b *Backend) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	data, err := b.lookup(ctx, "get", h)
	if err != nil {
		return err
	}
	n, err := store.CheckRange(off, length, int64(len(data)))
	if err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	return fn(bytes.NewReader(bytes.Clone(data[off : off+n])))
}

// Stat returns the size of the file.
func (b *Backend) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	data, err := b.lookup(ctx, "stat", h)
	if err != nil {
		return store.FileInfo{}, err
	}
	return store.FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

func (b *Backend) lookup(ctx context.Context, op string, h store.Handle) ([]byte, error) {
	if err := h.Valid(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, h, err)
	}
	b.mu.RLock()
	data, ok := b.files[h]
	b.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", op, h, store.ErrNotFound)
	}
	return data, nil
}

// List calls fn for each file of type t, sorted by name. It works on a
// snapshot taken at the start, so fn may call other methods of b.
func (b *Backend) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	var infos []store.FileInfo
	b.mu.RLock()
	for h, data := range b.files {
		if h.Type == t {
			infos = append(infos, store.FileInfo{Name: h.Name, Size: int64(len(data))})
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(infos, func(a, b store.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the file.
func (b *Backend) Delete(ctx context.Context, h store.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", h, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.files[h]; !ok {
		return fmt.Errorf("delete %s: %w", h, store.ErrNotFound)
	}
	delete(b.files, h)
	return nil
}

// Close does nothing; the files stay readable.
func (b *Backend) Close() error { return nil }
