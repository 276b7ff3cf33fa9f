package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
)

// FileType names a class of repository files. Each type lives in its own
// namespace (a folder on local disk, a key prefix on an object store).
type FileType string

// The file types of a repository. These strings are part of the on-disk
// format (they are the folder names); they must not change.
const (
	ConfigFile   FileType = "config"
	KeyFile      FileType = "keys"
	LockFile     FileType = "locks"
	SnapshotFile FileType = "snapshots"
	IndexFile    FileType = "index"
	PackFile     FileType = "data"
)

// AllTypes lists every file type, in the order a repository is laid out.
var AllTypes = []FileType{ConfigFile, KeyFile, LockFile, SnapshotFile, IndexFile, PackFile}

// Valid reports whether t is one of the known file types.
func (t FileType) Valid() error {
	if slices.Contains(AllTypes, t) {
		return nil
	}
	return fmt.Errorf("invalid file type %q", t)
}

// Handle names one file in a repository. For ConfigFile the Name is empty.
type Handle struct {
	Type FileType
	Name string
}

// String returns "type/name", or "config".
func (h Handle) String() string {
	if h.Type == ConfigFile {
		return string(ConfigFile)
	}
	return string(h.Type) + "/" + h.Name
}

var validName = regexp.MustCompile(`^[0-9a-zA-Z][0-9a-zA-Z._-]{0,127}$`)

// Valid reports whether the handle names a file a backend may store: a known
// type and, except for the config, a name of letters, digits, '.', '_' or '-'
// that does not start with a dot or a dash.
func (h Handle) Valid() error {
	switch h.Type {
	case ConfigFile:
		if h.Name != "" {
			return fmt.Errorf("invalid handle %q: config has no name", h.Name)
		}
		return nil
	case KeyFile, LockFile, SnapshotFile, IndexFile, PackFile:
		if !validName.MatchString(h.Name) {
			return fmt.Errorf("invalid handle %s/%q", h.Type, h.Name)
		}
		return nil
	}
	return fmt.Errorf("invalid file type %q", h.Type)
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name string
	Size int64
}

// Sentinel errors. Backends translate their own errors into these at the edge,
// so callers test with errors.Is.
var (
	// ErrNotFound means the file (or the repository) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a file that must be created fresh already exists.
	ErrExists = errors.New("already exists")
)

// Backend stores the files of one repository.
//
// Contract, which every backend passes in store/storetest:
//   - Put is atomic: a reader sees either no file or the whole file, never a
//     part of it, even if the process dies during Put. Put replaces an existing
//     file of the same handle atomically. The size argument is the number of
//     bytes rd yields; a backend fails the put if rd yields a different amount.
//     rd may be re-read from the start (Seek) by retrying backends.
//   - Once Put has returned nil, Get, Stat and List see the file (read after
//     write, list after write). Once Delete has returned nil they do not.
//   - Get calls fn once with a reader over length bytes starting at off;
//     length 0 means "to the end of the file". Reading past the end is an
//     error that matches io.ErrUnexpectedEOF. fn's error is returned
//     unchanged (possibly wrapped).
//   - A missing file makes Get, Stat and Delete return an error that matches
//     ErrNotFound with errors.Is. List of an empty type calls fn zero times.
//   - List calls fn once per file of the given type, in no particular order,
//     and stops at the first error fn returns.
//   - All methods are safe for concurrent use by several goroutines.
type Backend interface {
	// Location describes the backend for messages (never with credentials).
	Location() string
	Put(ctx context.Context, h Handle, rd io.ReadSeeker, size int64) error
	Get(ctx context.Context, h Handle, off, length int64, fn func(io.Reader) error) error
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error
	Delete(ctx context.Context, h Handle) error
	Close() error
}

// ReadAll returns the whole file named by h.
func ReadAll(ctx context.Context, b Backend, h Handle) ([]byte, error) {
	var buf []byte
	err := b.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		buf, err = io.ReadAll(rd)
		return err
	})
	return buf, err
}

// ReadAt returns length bytes of the file named by h, starting at off. A file
// shorter than off+length is an error (io.ErrUnexpectedEOF).
func ReadAt(ctx context.Context, b Backend, h Handle, off, length int64) ([]byte, error) {
	if length <= 0 {
		return nil, fmt.Errorf("read %s at %d: invalid length %d", h, off, length)
	}
	buf := make([]byte, length)
	err := b.Get(ctx, h, off, length, func(rd io.Reader) error {
		_, err := io.ReadFull(rd, buf)
		return err
	})
	return buf, err
}

// CheckRange validates the range of a Get against the size of the file and
// returns the number of bytes the range covers (size-off when length is 0).
// A negative offset or length is an error; a range that reaches past the end
// of the file is an error that matches io.ErrUnexpectedEOF.
func CheckRange(off, length, size int64) (int64, error) {
	switch {
	case off < 0 || length < 0:
		return 0, fmt.Errorf("invalid range %d+%d", off, length)
	case off > size:
		return 0, fmt.Errorf("offset %d beyond end of file (%d bytes): %w", off, size, io.ErrUnexpectedEOF)
	case length == 0:
		return size - off, nil
	case length > size-off:
		return 0, fmt.Errorf("range %d+%d beyond end of file (%d bytes): %w", off, length, size, io.ErrUnexpectedEOF)
	}
	return length, nil
}
