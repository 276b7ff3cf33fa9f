package local_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/local"
	"github.com/bk-backup/bk/store/storetest"
)

func newRepo(t testing.TB) (*local.Backend, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, _ := newRepo(t)
		return b
	})
}

func BenchmarkBackend(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Backend {
		be, _ := newRepo(b)
		return be
	})
}

func put(t *testing.T, b store.Backend, h store.Handle, data string) {
	t.Helper()
	if err := b.Put(t.Context(), h, bytes.NewReader([]byte(data)), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

var pack = store.Handle{Type: store.PackFile, Name: "ab12cd"}

func TestLayoutAndPermissions(t *testing.T) {
	b, dir := newRepo(t)
	put(t, b, store.Handle{Type: store.ConfigFile}, "config")
	put(t, b, store.Handle{Type: store.KeyFile, Name: "k1"}, "key")
	put(t, b, store.Handle{Type: store.SnapshotFile, Name: "s1"}, "snapshot")
	put(t, b, pack, "pack")

	want := []string{"config", "data", "data/ab", "data/ab/ab12cd", "index", "keys", "keys/k1", "locks", "snapshots", "snapshots/s1"}
	var got []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		wantMode := fs.FileMode(0o600)
		if d.IsDir() {
			wantMode = fs.ModeDir | 0o700
		}
		if fi.Mode() != wantMode {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode(), wantMode)
		}
		if rel != "." {
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("layout:\n got %q\nwant %q", got, want)
	}
}

func TestCreateMissingParents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "repo")
	if _, err := local.Create(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("parent mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestCreateEmptyFolder(t *testing.T) {
	dir := t.TempDir()
	if _, err := local.Create(dir); err != nil {
		t.Fatalf("create in empty folder: %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to create at
	}{
		{"repository", func(t *testing.T, dir string) string {
			if _, err := local.Create(dir); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"folder with a file", func(t *testing.T, dir string) string {
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"folder with a hidden file", func(t *testing.T, dir string) string {
			if err := os.WriteFile(filepath.Join(dir, ".keep"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"regular file", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "file")
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t, t.TempDir())
			before := listTree(t, path)
			if _, err := local.Create(path); !errors.Is(err, store.ErrExists) {
				t.Fatalf("create at %s: err = %v, want ErrExists", path, err)
			}
			if after := listTree(t, path); !slices.Equal(before, after) {
				t.Errorf("refused create changed %s: %q, was %q", path, after, before)
			}
		})
	}
}

func listTree(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestOpen(t *testing.T) {
	b, dir := newRepo(t)
	if _, err := local.Open(dir); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open repository without config: err = %v, want ErrNotFound", err)
	}
	put(t, b, store.Handle{Type: store.ConfigFile}, "config")
	put(t, b, pack, "pack")
	b2, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Stat(t.Context(), pack); err != nil {
		t.Errorf("stat %s in reopened repository: %v", pack, err)
	}
}

func TestOpenNotFound(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir(), file} {
		_, err := local.Open(path)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("open %s: err = %v, want ErrNotFound", path, err)
		}
	}
}

// TestListSkipsStrays checks that List ignores what a crash or a person may
// leave in the repository folders.
func TestListSkipsStrays(t *testing.T) {
	b, dir := newRepo(t)
	put(t, b, pack, "pack")
	put(t, b, store.Handle{Type: store.IndexFile, Name: "i1"}, "index")
	strays := []string{
		"data/ab/.tmp-123456", // temporary file of a crashed put
		"index/.tmp-987654",   // likewise
		"data/cd/ab99",        // pack in the wrong subfolder
		"data/stray",          // file directly in data/
		"index/not valid",     // invalid name
		"index/sub/i2",        // file in a subfolder
		"snapshots/.DS_Store", // hidden file
		"keys/-starts-with-dash",
	}
	for _, s := range strays {
		path := filepath.Join(dir, filepath.FromSlash(s))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := map[store.FileType][]string{
		store.PackFile:  {pack.Name},
		store.IndexFile: {"i1"},
	}
	for _, typ := range store.AllTypes {
		var got []string
		err := b.List(t.Context(), typ, func(fi store.FileInfo) error {
			got = append(got, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatalf("list %s: %v", typ, err)
		}
		if !slices.Equal(got, want[typ]) {
			t.Errorf("list %s = %q, want %q", typ, got, want[typ])
		}
	}
}

// TestFailedPutLeavesNoTempFile checks the clean-up after a failed put and
// that the reader's error comes through.
func TestFailedPutLeavesNoTempFile(t *testing.T) {
	b, dir := newRepo(t)
	err := b.Put(t.Context(), pack, failingReader{}, 10)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("put: err = %v, want EIO", err)
	}
	if err := b.Put(t.Context(), pack, bytes.NewReader([]byte("short")), 10); err == nil {
		t.Error("put of a short reader: no error")
	}
	for _, d := range []string{"data", "data/ab"} {
		entries, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "ab" {
				t.Errorf("%s/%s left behind", d, e.Name())
			}
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error)       { return 0, syscall.EIO }
func (failingReader) Seek(int64, int) (int64, error) { return 0, nil }

// TestPutMissingRepository checks that a put never recreates a repository
// folder that has gone away (an unmounted drive, say).
func TestPutMissingRepository(t *testing.T) {
	b, dir := newRepo(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, h := range []store.Handle{{Type: store.ConfigFile}, {Type: store.KeyFile, Name: "k1"}, pack} {
		if err := b.Put(t.Context(), h, bytes.NewReader(nil), 0); err == nil {
			t.Errorf("put %s into a missing repository: no error", h)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("repository folder recreated: %v", err)
	}
}

// TestPutRecreatesTypeFolder checks that a put recreates a type folder that
// a copy tool dropped because it was empty.
func TestPutRecreatesTypeFolder(t *testing.T) {
	b, dir := newRepo(t)
	if err := os.Remove(filepath.Join(dir, "locks")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	put(t, b, store.Handle{Type: store.LockFile, Name: "l1"}, "lock")
	put(t, b, pack, "pack")
}
