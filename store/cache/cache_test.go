package cache_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/cache"
	"github.com/bk-backup/bk/store/mem"
)

// counting counts the Gets of each file type that reach the backend.
type counting struct {
	store.Backend
	mu   sync.Mutex
	gets map[store.FileType]int
}

func (c *counting) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	c.mu.Lock()
	c.gets[h.Type]++
	c.mu.Unlock()
	return c.Backend.Get(ctx, h, off, length, fn)
}

func (c *counting) reset() map[store.FileType]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gets
	c.gets = map[store.FileType]int{}
	return g
}

func verify(h store.Handle, data []byte) bool { return crypt.Hash(data).String() == h.Name }

// open opens the repository through a fresh cache wrapper on dir and reads
// what every command reads: the index and the snapshot list.
func open(t *testing.T, be store.Backend, dir string) []*repo.Snapshot {
	t.Helper()
	c, err := cache.New(be, dir, verify)
	if err != nil {
		t.Fatal(err)
	}
	r := repotest.Reopen(t, c)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, err := r.Snapshots(context.Background(), repo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func snapshot(t *testing.T, r *repo.Repository, name string, seed byte) {
	t.Helper()
	data := bytes.Repeat([]byte{seed, 1, 2, 3, 4, 5, 6, seed}, 40000)
	if _, err := r.SnapshotStream(context.Background(), bytes.NewReader(data), repo.SnapshotOptions{Name: name, Host: "h"}); err != nil {
		t.Fatal(err)
	}
}

// TestOpenCostsWhatChanged opens a repository again and again: after the
// first time, only files that are new reach the backend, and a damaged or
// deleted cache costs a download, never an error.
func TestOpenCostsWhatChanged(t *testing.T) {
	be := mem.New()
	w := repotest.NewOn(t, be)
	for i := range 5 {
		snapshot(t, w, "db", byte(i))
	}
	c := &counting{Backend: be, gets: map[store.FileType]int{}}
	dir := t.TempDir()

	if n := len(open(t, c, dir)); n != 5 {
		t.Fatalf("%d snapshots", n)
	}
	first := c.reset()
	if first[store.SnapshotFile] != 5 || first[store.IndexFile] == 0 {
		t.Fatalf("first open read %v", first)
	}
	open(t, c, dir)
	if again := c.reset(); again[store.SnapshotFile] != 0 || again[store.IndexFile] != 0 || again[store.KeyFile] != 0 {
		t.Fatalf("second open read %v, want no snapshot, index or key file", again)
	}

	// Another host adds a snapshot: only its files are fetched.
	snapshot(t, w, "db", 9)
	if n := len(open(t, c, dir)); n != 6 {
		t.Fatalf("%d snapshots after a new one", n)
	}
	if got := c.reset(); got[store.SnapshotFile] != 1 || got[store.IndexFile] != 1 {
		t.Fatalf("open after one new snapshot read %v, want 1 snapshot and 1 index file", got)
	}

	// A corrupt cached file is fetched again; a deleted cache is rebuilt.
	files, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*"))
	if len(files) != 6 {
		t.Fatalf("%d cached snapshot files", len(files))
	}
	if err := os.WriteFile(files[0], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := len(open(t, c, dir)); n != 6 {
		t.Fatalf("%d snapshots with a corrupt cache file", n)
	}
	if got := c.reset(); got[store.SnapshotFile] != 1 {
		t.Fatalf("corrupt cache file: read %v", got)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if n := len(open(t, c, dir)); n != 6 {
		t.Fatalf("%d snapshots with the cache deleted", n)
	}

	// Files removed from the repository leave the cache at the next listing.
	list := open(t, c, dir)
	l, err := w.Lock(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.RemoveSnapshots(context.Background(), []crypt.ID{list[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	open(t, c, dir)
	if files, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*")); len(files) != 5 {
		t.Fatalf("%d cached snapshot files after a removal, want 5", len(files))
	}
}
