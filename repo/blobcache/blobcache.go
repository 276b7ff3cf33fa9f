// Package blobcache keeps sealed data blobs on local disk so that the next
// snapshot of a source finds its delta bases without fetching them from a
// remote repository. An entry is one file per pack, named by the pack ID:
// a span of the pack's bytes exactly as stored (still encrypted) that holds
// the blobs the source used from it. One file per pack, not per blob, keeps
// the cost of filling the cache to a write per 16 MiB. The cache is bounded
// in size and safe to delete at any time: a missing, stale or damaged entry
// is a miss, and the reader authenticates every blob it takes from it.
package blobcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/bk-backup/bk/crypt"
)

// header is the pack ID and the span's offset in it, before the span.
const header = crypt.IDSize + 8

// Cache is a folder of cached blobs. Its methods are safe for concurrent use
// by goroutines and by processes (entries are written atomically).
type Cache struct {
	dir string
	max int64
}

// Open opens (creating it 0700) the cache folder dir, bounded to max bytes.
func Open(dir string, max int64) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open blob cache: %w", err)
	}
	return &Cache{dir: dir, max: max}, nil
}

func (c *Cache) path(pack crypt.ID) string {
	s := pack.String()
	return filepath.Join(c.dir, s[:2], s)
}

// Get returns the sealed bytes at offset off of pack p, length bytes long,
// if the cache holds that part of the pack; id, the blob stored there, is
// not checked here (the caller authenticates the blob). A nil Cache holds
// nothing.
func (c *Cache) Get(id, p crypt.ID, off, length int64) ([]byte, bool) {
	if c == nil || off < 0 || length < 0 {
		return nil, false
	}
	f, err := os.Open(c.path(p))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	var hdr [header]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil || !bytes.Equal(hdr[:crypt.IDSize], p[:]) {
		return nil, false
	}
	start := int64(binary.LittleEndian.Uint64(hdr[crypt.IDSize:]))
	if off < start {
		return nil, false
	}
	b := make([]byte, length)
	if n, _ := f.ReadAt(b, header+off-start); int64(n) != length {
		return nil, false
	}
	return b, true
}

// Put stores span, the bytes of pack p from offset off on, replacing what
// the cache held of p.
func (c *Cache) Put(p crypt.ID, off int64, span []byte) error {
	path := c.path(p)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	var hdr [header]byte
	copy(hdr[:], p[:])
	binary.LittleEndian.PutUint64(hdr[crypt.IDSize:], uint64(off))
	_, err = f.Write(hdr[:])
	if err == nil {
		_, err = f.Write(span)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("blob cache: %w", err)
	}
	return nil
}

// Retain removes the entry of every pack for which keep returns false, then
// the oldest entries until the cache fits its bound.
func (c *Cache) Retain(keep func(pack crypt.ID) bool) error {
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	var kept []entry
	var total int64
	err := filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || (len(d.Name()) > 0 && d.Name()[0] == '.') {
			return nil // folders, and temporary files of concurrent writers
		}
		id, perr := crypt.ParseID(d.Name())
		if perr != nil || !keep(id) {
			return os.Remove(path)
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		kept = append(kept, entry{path, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].mod.Before(kept[j].mod) })
	for _, e := range kept {
		if total <= c.max {
			break
		}
		if err := os.Remove(e.path); err == nil {
			total -= e.size
		}
	}
	return nil
}
