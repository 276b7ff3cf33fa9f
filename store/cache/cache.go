package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bk-backup/bk/store"
)

// Verify reports whether data is the content of the file h names. The cache
// stores and serves only verified files.
type Verify func(h store.Handle, data []byte) bool

// cached lists the file types the cache keeps.
var cached = map[store.FileType]bool{store.SnapshotFile: true, store.IndexFile: true, store.KeyFile: true}

// maxFile bounds the files the cache keeps; larger ones pass through.
const maxFile = 64 << 20

// Backend is a store.Backend whose whole-file reads of snapshots, indexes
// and keys are served from a local folder when it has them.
type Backend struct {
	store.Backend
	dir    string
	verify Verify
}

// New wraps be with a cache in dir (created 0700 if missing).
func New(be store.Backend, dir string, verify Verify) (*Backend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("metadata cache %s: %w", dir, err)
	}
	return &Backend{Backend: be, dir: dir, verify: verify}, nil
}

func (b *Backend) path(h store.Handle) string {
	return filepath.Join(b.dir, string(h.Type), h.Name)
}

// Get serves a whole cacheable file from the cache, or reads it through and
// keeps a verified copy.
func (b *Backend) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	if !cached[h.Type] || off != 0 || length != 0 || h.Valid() != nil {
		return b.Backend.Get(ctx, h, off, length, fn)
	}
	path := b.path(h)
	if data, err := os.ReadFile(path); err == nil {
		if b.verify(h, data) {
			return fn(bytes.NewReader(data))
		}
		_ = os.Remove(path) // corrupt or foreign: fetch it again
	}
	var data []byte
	err := b.Backend.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(io.LimitReader(rd, maxFile+1))
		return err
	})
	if err != nil {
		return err
	}
	if len(data) <= maxFile && b.verify(h, data) {
		b.keep(h, data)
	}
	return fn(bytes.NewReader(data))
}

// Put stores the file and keeps a copy of cacheable ones.
func (b *Backend) Put(ctx context.Context, h store.Handle, rd io.ReadSeeker, size int64) error {
	if err := b.Backend.Put(ctx, h, rd, size); err != nil {
		return err
	}
	if cached[h.Type] && size <= maxFile {
		if _, err := rd.Seek(0, io.SeekStart); err == nil {
			if data, err := io.ReadAll(rd); err == nil && b.verify(h, data) {
				b.keep(h, data)
			}
		}
	}
	return nil
}

// Delete removes the file and its cached copy.
func (b *Backend) Delete(ctx context.Context, h store.Handle) error {
	if cached[h.Type] && h.Valid() == nil {
		_ = os.Remove(b.path(h))
	}
	return b.Backend.Delete(ctx, h)
}

// List lists the backend and, after a complete listing of a cacheable type,
// drops cached files that are gone from the repository.
func (b *Backend) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if !cached[t] {
		return b.Backend.List(ctx, t, fn)
	}
	seen := map[string]bool{}
	err := b.Backend.List(ctx, t, func(fi store.FileInfo) error {
		seen[fi.Name] = true
		return fn(fi)
	})
	if err != nil {
		return err
	}
	entries, _ := os.ReadDir(filepath.Join(b.dir, string(t)))
	for _, e := range entries {
		if !seen[e.Name()] {
			_ = os.Remove(filepath.Join(b.dir, string(t), e.Name()))
		}
	}
	return nil
}

// keep writes a verified file into the cache: a temporary file renamed into
// place, so a reader never sees part of one. Failures only cost a download
// next time.
func (b *Backend) keep(h store.Handle, data []byte) {
	dir := filepath.Join(b.dir, string(h.Type))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), b.path(h))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() store.Backend { return b.Backend }

var _ store.Backend = (*Backend)(nil)
