package blobcache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/crypt"
)

func id(b byte) crypt.ID {
	var x crypt.ID
	x[0], x[31] = b, b
	return x
}

func TestPutGetRetain(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "c"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sealed := bytes.Repeat([]byte("s"), 100)
	if err := c.Put(id(1), id(9), 37, sealed); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Get(id(1), id(9), 37, 100); !ok || !bytes.Equal(got, sealed) {
		t.Fatal("cached blob not returned")
	}
	// A blob that moved (another pack, offset or length) is a miss.
	for _, tc := range []struct {
		p        crypt.ID
		off, len int64
	}{{id(8), 37, 100}, {id(9), 38, 100}, {id(9), 37, 99}} {
		if _, ok := c.Get(id(1), tc.p, tc.off, tc.len); ok {
			t.Fatalf("stale entry served for %+v", tc)
		}
	}
	if _, ok := c.Get(id(2), id(9), 37, 100); ok {
		t.Fatal("missing blob served")
	}
	var nilCache *Cache
	if _, ok := nilCache.Get(id(1), id(9), 37, 100); ok {
		t.Fatal("nil cache served a blob")
	}
	_ = c.Put(id(2), id(9), 200, sealed)
	if err := c.Retain(func(x crypt.ID) bool { return x == id(2) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(id(1), id(9), 37, 100); ok {
		t.Fatal("Retain kept a blob it was told to drop")
	}
	if _, ok := c.Get(id(2), id(9), 200, 100); !ok {
		t.Fatal("Retain dropped a kept blob")
	}
}

func TestRetainBound(t *testing.T) {
	c, err := Open(t.TempDir(), 250)
	if err != nil {
		t.Fatal(err)
	}
	for i := byte(1); i <= 5; i++ {
		if err := c.Put(id(i), id(9), 37, make([]byte, 60)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Retain(func(crypt.ID) bool { return true }); err != nil {
		t.Fatal(err)
	}
	var total int64
	_ = filepath.Walk(c.dir, func(_ string, info os.FileInfo, _ error) error {
		if info != nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	if total > 250 {
		t.Fatalf("cache holds %d bytes, bound 250", total)
	}
}

func TestDeletedCacheIsAMiss(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c, _ := Open(dir, 1<<20)
	_ = c.Put(id(1), id(9), 37, []byte("x"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(id(1), id(9), 37, 1); ok {
		t.Fatal("deleted cache served a blob")
	}
	if err := c.Retain(func(crypt.ID) bool { return true }); err != nil {
		t.Fatalf("retain on a deleted cache: %v", err)
	}
}
