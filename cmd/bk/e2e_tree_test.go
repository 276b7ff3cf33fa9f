package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/testenv"
)

// writeTree fills dir with a small tree of every kind of entry bk keeps.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 3<<20)
	_, _ = rand.Read(big)
	must(os.MkdirAll(filepath.Join(dir, "db/wal"), 0o750))
	must(os.MkdirAll(filepath.Join(dir, "empty"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "db/data.bin"), big, 0o640))
	must(os.WriteFile(filepath.Join(dir, "db/wal/000001"), []byte("wal record\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "empty.txt"), nil, 0o644))
	must(os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.Chmod(filepath.Join(dir, "run.sh"), 0o755|os.ModeSetuid))
	must(os.Symlink("db/data.bin", filepath.Join(dir, "current")))
	must(os.Symlink("/nonexistent/target", filepath.Join(dir, "dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(os.Chmod(filepath.Join(dir, "fifo"), 0o620))
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "README"), old, old))
	must(os.Chtimes(filepath.Join(dir, "db/wal"), old, old))
}

// treeState describes every entry under dir: type, mode, size, mtime,
// link target and a content digest.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		desc := fi.Mode().String() + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(rune(len(b))) + " " + string(b[:min(len(b), 64)])
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		if fi.IsDir() {
			desc = fi.Mode().String() // children change a folder's mtime on the way
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestE2ETreeSnapshot backs up a folder, changes one file, backs it up
// again without reading the unchanged files, and restores all or part of
// it with every kind of entry intact.
func TestE2ETreeSnapshot(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeTree(t, src)
	r := newRepo(t)

	var first, second snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", src, "--json").stdout, &first)
	if first.Name != "dir:"+src || first.Nodes != 12 || first.UnchangedFiles != 0 {
		t.Fatalf("first snapshot %+v", first)
	}
	f, err := os.OpenFile(filepath.Join(src, "db/wal/000001"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("another record\n")
	_ = f.Close()
	decodeJSON(t, r.must(nil, "snapshot", "file://"+src, "--json").stdout, &second)
	if second.UnchangedFiles != 4 || second.AddedBytes > first.AddedBytes/20 {
		t.Fatalf("second snapshot: %d unchanged files, %d bytes added (first %d)",
			second.UnchangedFiles, second.AddedBytes, first.AddedBytes)
	}

	out := filepath.Join(t.TempDir(), "out")
	r.must(nil, "restore", second.ID, "--target", out)
	want, got := treeState(t, src), treeState(t, out)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: restored %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("restored %d entries, want %d", len(got), len(want))
	}

	// ls lists the tree; a path narrows it.
	ls := string(r.must(nil, "ls", second.ID).stdout)
	for _, s := range []string{"db/wal/000001", "current -> db/data.bin", "prw--w----", "-rwsr-xr-x"} {
		if !strings.Contains(ls, s) {
			t.Errorf("ls lacks %q:\n%s", s, ls)
		}
	}
	var entries []lsEntry
	decodeJSON(t, r.must(nil, "ls", second.ID, "db", "--json").stdout, &entries)
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	if !slices.Equal(paths, []string{"db", "db/data.bin", "db/wal", "db/wal/000001"}) {
		t.Fatalf("ls db: %v", paths)
	}

	// --include restores part of the tree.
	part := filepath.Join(t.TempDir(), "part")
	r.must(nil, "restore", "latest", "--name", "dir:"+src, "--target", part, "--include", "db/wal", "--include", "*.txt")
	got = treeState(t, part)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"db", "db/wal", "db/wal/000001", "empty.txt"}) {
		t.Fatalf("partial restore holds %v", keys)
	}
	if b, _ := os.ReadFile(filepath.Join(part, "db/wal/000001")); !bytes.Equal(b, []byte("wal record\nanother record\n")) {
		t.Fatalf("partial restore content %q", b)
	}

	// The first snapshot goes; the second, which shares its unchanged
	// files, restores and checks clean.
	r.must(nil, "forget", first.ID)
	r.must(nil, "prune")
	r.must(nil, "check", "--read-data")
	again := filepath.Join(t.TempDir(), "again")
	r.must(nil, "restore", second.ID, "--target", again)
	if b, _ := os.ReadFile(filepath.Join(again, "db/data.bin")); !bytes.Equal(b, mustRead(t, filepath.Join(src, "db/data.bin"))) {
		t.Fatal("db/data.bin differs after prune")
	}

	// A restore drill recreates the newest tree in a temporary folder.
	drills := string(r.must(nil, "check", "--restore-test").stdout)
	if !strings.Contains(drills, "pass dir:"+src) || !strings.Contains(drills, "5 files checked") {
		t.Fatalf("restore drill of the tree:\n%s", drills)
	}

	// Wrong uses are refused with a clear message.
	r.run(nil, "restore", second.ID, "--stdout").wantFail(t, exitUsage, "directory tree", "--target")
	r.run(nil, "snapshot", filepath.Join(src, "missing")).wantFail(t, exitSource, "no such file")
	r.run(nil, "snapshot", filepath.Join(src, "README")).wantFail(t, exitUsage, "not a folder")
	r.run(nil, "restore", second.ID, "--target", out, "--include", "[").wantFail(t, exitUsage, "not a valid pattern")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestE2EManySources snapshots several sources in one run: they share the
// batch's packs, a failing source does not stop the others, and the exit
// code reports the failure.
func TestE2EManySources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := sqliteDB(t, dir)
	tree := filepath.Join(dir, "tree")
	writeTree(t, tree)
	r := newRepo(t)
	res := r.run(nil, "snapshot", tree, "sqlite://"+db, "sqlite://"+filepath.Join(dir, "missing.db"), "--json")
	res.wantFail(t, exitSource, "sqlite:missing.db: no snapshot saved", "1 of 3 sources failed")
	var list []map[string]any
	decodeJSON(t, res.stdout, &list)
	if len(list) != 3 || list[0]["name"] != "dir:"+tree || list[1]["name"] != "sqlite:app.db" ||
		list[2]["error"] == nil || list[2]["id"] != nil {
		t.Fatalf("JSON of three sources: %v", list)
	}
	if n := len(r.snapshots()); n != 2 {
		t.Fatalf("%d snapshots saved, want 2", n)
	}
	r.must(nil, "check", "--read-data")
	r.must(nil, "restore", "latest", "--name", "sqlite:app.db", "--target", filepath.Join(dir, "out"))
}

// sqliteDB creates dir/app.db, a SQLite database with a table of three
// rows, and returns its path.
func sqliteDB(t *testing.T, dir string) string {
	t.Helper()
	sqlite3 := testenv.RequireCommand(t, "sqlite3")
	db := filepath.Join(dir, "app.db")
	if out, err := exec.Command(sqlite3, db, "CREATE TABLE t(a); INSERT INTO t VALUES (1), (2), (3);").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	return db
}
