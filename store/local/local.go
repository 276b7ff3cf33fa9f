package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bk-backup/bk/store"
)

// dirMode is the mode of the folders the backend creates. Files get mode
// 0600 from os.CreateTemp.
const dirMode = 0o700

// tmpPrefix starts the names of temporary files. It begins with a dot, so no
// valid file name (store.Handle.Valid) starts with it.
const tmpPrefix = ".tmp-"

// Backend stores a repository in a local folder. It is safe for concurrent
// use.
type Backend struct {
	path string
}

var _ store.Backend = (*Backend)(nil)

// Create makes a new repository at path: the folder itself (and any missing
// parents) and its type folders, all with mode 0700. path must not exist or
// be an empty folder; otherwise Create returns an error that matches
// store.ErrExists. Create writes no config; the caller puts one.
func Create(path string) (*Backend, error) {
	path = filepath.Clean(path)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(path, dirMode); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("create repository: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("create repository at %s: not a folder: %w", path, store.ErrExists)
	default:
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("create repository at %s: folder is not empty: %w", path, store.ErrExists)
		}
	}
	for _, t := range store.AllTypes {
		if t == store.ConfigFile {
			continue
		}
		if err := os.Mkdir(filepath.Join(path, string(t)), dirMode); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	if err := syncDir(path); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	return &Backend{path: path}, nil
}

// Open opens the repository at path. If path does not exist or holds no
// config file, Open returns an error that matches store.ErrNotFound.
func Open(path string) (*Backend, error) {
	path = filepath.Clean(path)
	fi, err := os.Stat(filepath.Join(path, string(store.ConfigFile)))
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("no repository at %s: %w", path, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("open repository: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open repository at %s: config is not a regular file", path)
	}
	return &Backend{path: path}, nil
}

// Location returns the path of the repository folder.
func (b *Backend) Location() string { return b.path }

// filename returns the path of the file h names; h must be valid.
func (b *Backend) filename(h store.Handle) string {
	switch h.Type {
	case store.ConfigFile:
		return filepath.Join(b.path, string(store.ConfigFile))
	case store.PackFile:
		return filepath.Join(b.path, string(store.PackFile), subdir(h.Name), h.Name)
	}
	return filepath.Join(b.path, string(h.Type), h.Name)
}

// subdir returns the name of the data/ subfolder that holds the pack name.
func subdir(name string) string { return name[:min(2, len(name))] }

// Put writes the file atomically: temporary file, write, fsync, rename,
// fsync of the folder. Errors of the file system (such as syscall.ENOSPC)
// are wrapped, not replaced.
func (b *Backend) Put(ctx context.Context, h store.Handle, rd io.ReadSeeker, size int64) (err error) {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("put %s: %w", h, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("invalid size %d", size)
	}
	name := b.filename(h)
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = b.mkdir(dir); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close() // may be closed already
			_ = os.Remove(f.Name())
		}
	}()

	n, err := io.CopyN(f, ctxReader{ctx, rd}, size)
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("reader yields %d bytes, want %d: %w", n, size, io.ErrUnexpectedEOF)
	case err != nil:
		return err
	}
	var extra [1]byte
	if n, err := io.ReadFull(rd, extra[:]); n > 0 {
		return fmt.Errorf("reader yields more than %d bytes", size)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	return syncDir(dir)
}

// mkdir creates dir, a folder below the repository folder, and any missing
// folders between the two. It never recreates the repository folder itself:
// if that is gone (say, an unmounted drive), the put fails.
func (b *Backend) mkdir(dir string) error {
	if dir == b.path || filepath.Dir(dir) == dir {
		return fmt.Errorf("repository folder %s is missing: %w", b.path, fs.ErrNotExist)
	}
	parent := filepath.Dir(dir)
	err := os.Mkdir(dir, dirMode)
	if errors.Is(err, fs.ErrNotExist) {
		if err := b.mkdir(parent); err != nil {
			return err
		}
		err = os.Mkdir(dir, dirMode)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) { // a concurrent put may have made it
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a folder, so renames and new entries in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil // the file system cannot sync folders
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Get calls fn with a reader over the requested range of the file.
func (b *Backend) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	f, err := os.Open(b.filename(h))
	if err != nil {
		return fmt.Errorf("get %s: %w", h, notFound(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	n, err := store.CheckRange(off, length, fi.Size())
	if err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	return fn(io.NewSectionReader(f, off, n))
}

// notFound translates a missing file into store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return store.ErrNotFound
	}
	return err
}

// Stat returns the size of the file.
func (b *Backend) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return store.FileInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return store.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	fi, err := os.Stat(b.filename(h))
	if err != nil {
		return store.FileInfo{}, fmt.Errorf("stat %s: %w", h, notFound(err))
	}
	return store.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// List calls fn for each file of type t. It skips temporary files, files
// whose names are not valid, and packs in the wrong data/ subfolder. fn's
// error is returned unchanged.
func (b *Backend) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	switch t {
	case store.ConfigFile:
		fi, err := b.Stat(ctx, store.Handle{Type: t})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(fi)
	case store.PackFile:
		dir := filepath.Join(b.path, string(t))
		subs, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list %s: %w", t, err)
		}
		for _, sub := range subs {
			if !sub.IsDir() {
				continue
			}
			if err := b.listDir(ctx, t, filepath.Join(dir, sub.Name()), sub.Name(), fn); err != nil {
				return err
			}
		}
		return nil
	}
	return b.listDir(ctx, t, filepath.Join(b.path, string(t)), "", fn)
}

// listDir calls fn for the files of type t in dir. For packs, sub is the
// name of the data/ subfolder.
func (b *Backend) listDir(ctx context.Context, t store.FileType, dir, sub string, fn func(store.FileInfo) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list %s: %w", t, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || (store.Handle{Type: t, Name: name}).Valid() != nil ||
			(t == store.PackFile && subdir(name) != sub) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the folder was read
		} else if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(store.FileInfo{Name: name, Size: fi.Size()}); err != nil {
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
	if err := os.Remove(b.filename(h)); err != nil {
		return fmt.Errorf("delete %s: %w", h, notFound(err))
	}
	return nil
}

// Close does nothing; the backend holds no open files between calls.
func (b *Backend) Close() error { return nil }
