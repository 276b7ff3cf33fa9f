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
	// Pack 9 from offset 37 on: two blobs of 100 bytes with 10 between.
	span := append(append(bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("-"), 10)...), bytes.Repeat([]byte("b"), 100)...)
	if err := c.Put(id(9), 37, span); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off, len int64
		want     []byte
	}{{37, 100, span[:100]}, {147, 100, span[110:]}, {37, 210, span}} {
		if got, ok := c.Get(id(1), id(9), tc.off, tc.len); !ok || !bytes.Equal(got, tc.want) {
			t.Fatalf("Get(%d, %d) = %q, %v", tc.off, tc.len, got, ok)
		}
	}
	// Another pack, or bytes outside the span, are a miss.
	for _, tc := range []struct {
		p        crypt.ID
		off, len int64
	}{{id(8), 37, 100}, {id(9), 36, 100}, {id(9), 148, 100}, {id(9), -1, 10}} {
		if _, ok := c.Get(id(1), tc.p, tc.off, tc.len); ok {
			t.Fatalf("entry served for %+v", tc)
		}
	}
	var nilCache *Cache
	if _, ok := nilCache.Get(id(1), id(9), 37, 100); ok {
		t.Fatal("nil cache served a blob")
	}
	// A pack whose file names another pack is a miss.
	if err := os.MkdirAll(filepath.Dir(c.path(id(7))), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c.path(id(9)), c.path(id(7))); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(id(1), id(7), 37, 100); ok {
		t.Fatal("an entry stored for another pack was served")
	}
	_ = c.Put(id(9), 37, span)
	_ = c.Put(id(10), 0, span)
	if err := c.Retain(func(p crypt.ID) bool { return p == id(10) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(id(1), id(9), 37, 100); ok {
		t.Fatal("Retain kept a pack it was told to drop")
	}
	if _, ok := c.Get(id(1), id(10), 0, 100); !ok {
		t.Fatal("Retain dropped a kept pack")
	}
}

func TestRetainBound(t *testing.T) {
	c, err := Open(t.TempDir(), 250)
	if err != nil {
		t.Fatal(err)
	}
	for i := byte(1); i <= 5; i++ {
		if err := c.Put(id(i), 37, make([]byte, 60)); err != nil {
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
	_ = c.Put(id(9), 37, []byte("x"))
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
