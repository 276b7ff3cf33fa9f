package dir

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"
)

func TestComparePath(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{".", ".", 0},
		{".", "a", -1},
		{".", "\x01", -1},
		{"a", "a", 0},
		{"a", "a/b", -1},
		{"a/b", "a.txt", -1},
		{"a/z/z", "a.txt", -1},
		{"a.txt", "b", -1},
		{"a/b", "a/b/c", -1},
		{"a/b/c", "a/c", -1},
		{"a/b", "a-b", -1},
		{"a/b", "a\x01", -1},
		{"B", "a", -1}, // bytes, not case-folded
		{"z", "é", -1}, // UTF-8 bytes: 'z' < 0xC3
		{"é", "é/x", -1},
		{"日本", "日本/語", -1},
		{"日本/語", "日本語", -1},
		{"ü.txt", "ü/x", 1},
	}
	for _, tt := range tests {
		if got := ComparePath(tt.a, tt.b); got != tt.want {
			t.Errorf("ComparePath(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := ComparePath(tt.b, tt.a); got != -tt.want {
			t.Errorf("ComparePath(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

// node is one object of a test tree.
type node struct {
	path string
	typ  Type
	mode uint32
	data string // File content, or Symlink target
	rdev uint64
}

// sourceTree lists a test tree in no particular order.
func sourceTree() []node {
	big := make([]byte, 300<<10)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(big)
	return []node{
		{".", Dir, 0o755, "", 0},
		{"a", Dir, 0o750, "", 0},
		{"a.txt", File, 0o4755, "a text", 0}, // setuid
		{"a/b", File, 0o644, "hello b", 0},
		{"a/c", Dir, 0o2775, "", 0}, // setgid
		{"a/c/d.bin", File, 0o600, string(big), 0},
		{"b", Dir, 0o1777, "", 0}, // sticky
		{"b/fifo", FIFO, 0o640, "", 0},
		{"empty", File, 0o444, "", 0},
		{"emptydir", Dir, 0o700, "", 0},
		{"link", Symlink, 0o777, "a.txt", 0},
		{"dangling", Symlink, 0o777, "nowhere/x", 0},
		{"abs", Symlink, 0o777, "/etc/passwd", 0},
		{"longlink", Symlink, 0o777, strings.Repeat("d/", 400) + "f", 0},
		{"ro", Dir, 0o555, "", 0},
		{"ro/f", File, 0o400, "read only", 0},
		{"ro/sub", Dir, 0o500, "", 0},
		{"ro/sub/g", File, 0o640, "deeper", 0},
		{"Z", File, 0o2640, "upper", 0}, // setgid file
		{"ü.txt", File, 0o644, "umlaut", 0},
		{"日本", Dir, 0o755, "", 0},
		{"日本/語", File, 0o644, "kanji", 0},
		{"sock", Socket, 0o755, "", 0},
	}
}

// mtimeOf gives every test path a distinct mtime with nanoseconds.
func mtimeOf(i int) int64 {
	return 1_600_000_000_123_456_789 + int64(i)*1_000_000_007
}

// build creates nodes under root (which exists), then sets modes and
// mtimes, children before parents. A device node is dropped from the
// returned list if mknod is not permitted.
func build(t testing.TB, root string, nodes []node) []node {
	t.Helper()
	writableOnCleanup(t, root)
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b node) int { return ComparePath(a.path, b.path) })
	var made []node
	for _, n := range nodes {
		p := filepath.Join(root, n.path)
		var err error
		switch n.typ {
		case Dir:
			if n.path != "." {
				err = os.Mkdir(p, 0o700)
			}
		case File:
			err = os.WriteFile(p, []byte(n.data), 0o600)
		case Symlink:
			err = os.Symlink(n.data, p)
		case FIFO:
			err = unix.Mkfifo(p, 0o600)
		case CharDevice:
			err = unix.Mknod(p, unix.S_IFCHR|0o600, int(n.rdev))
			if errors.Is(err, unix.EPERM) {
				continue
			}
		case Socket:
			var fd int
			fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err == nil {
				err = unix.Bind(fd, &unix.SockaddrUnix{Name: p})
				unix.Close(fd)
			}
		}
		if err != nil {
			t.Fatalf("build %s: %v", n.path, err)
		}
		made = append(made, n)
	}
	for i := len(made) - 1; i >= 0; i-- {
		n := made[i]
		p := filepath.Join(root, n.path)
		if n.typ != Symlink {
			if err := unix.Chmod(p, n.mode); err != nil {
				t.Fatal(err)
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mtimeOf(i)), unix.NsecToTimespec(mtimeOf(i))}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	return made
}

// writableOnCleanup makes every directory under root writable again before
// t.TempDir removes it; without root, read-only directories block that.
func writableOnCleanup(t testing.TB, root string) {
	t.Helper()
	t.Cleanup(func() {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}

// walkAll collects the entries Walk reports.
func walkAll(t testing.TB, root string, opts Options) []Entry {
	t.Helper()
	var got []Entry
	err := Walk(context.Background(), root, opts, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

func paths(es []Entry) []string {
	var ps []string
	for _, e := range es {
		ps = append(ps, e.Path)
	}
	return ps
}

func TestWalk(t *testing.T) {
	root := t.TempDir()
	nodes := sourceTree()
	if os.Geteuid() == 0 {
		nodes = append(nodes, node{"dev", Dir, 0o755, "", 0}, node{"dev/null", CharDevice, 0o666, "", unix.Mkdev(1, 3)})
	}
	made := build(t, root, nodes)
	got := walkAll(t, root, Options{})

	for i := 1; i < len(got); i++ {
		if ComparePath(got[i-1].Path, got[i].Path) >= 0 {
			t.Errorf("order: %q before %q", got[i-1].Path, got[i].Path)
		}
	}
	var want []string
	for _, n := range made {
		want = append(want, n.path)
	}
	if !slices.Equal(paths(got), want) {
		t.Fatalf("paths\n got %q\nwant %q", paths(got), want)
	}
	for i, e := range got {
		n := made[i]
		if e.Type != n.typ {
			t.Errorf("%s: type %s, want %s", e.Path, e.Type, n.typ)
		}
		if n.typ != Symlink && e.Mode != n.mode {
			t.Errorf("%s: mode %#o, want %#o", e.Path, e.Mode, n.mode)
		}
		if e.MTime != mtimeOf(i) {
			t.Errorf("%s: mtime %d, want %d", e.Path, e.MTime, mtimeOf(i))
		}
		if e.UID != uint32(os.Geteuid()) {
			t.Errorf("%s: uid %d, want %d", e.Path, e.UID, os.Geteuid())
		}
		if e.Inode == 0 || e.Dev == 0 || e.CTime == 0 {
			t.Errorf("%s: inode %d dev %d ctime %d", e.Path, e.Inode, e.Dev, e.CTime)
		}
		var wantSize int64
		var wantLink string
		switch n.typ {
		case File:
			wantSize = int64(len(n.data))
		case Symlink:
			wantLink = n.data
		}
		if e.Size != wantSize || e.Link != wantLink || e.Rdev != n.rdev {
			t.Errorf("%s: size %d link %q rdev %d, want %d %q %d", e.Path, e.Size, e.Link, e.Rdev, wantSize, wantLink, n.rdev)
		}
	}

	// On one file system OneFileSystem changes nothing.
	if one := walkAll(t, root, Options{OneFileSystem: true}); !slices.Equal(one, got) {
		t.Errorf("OneFileSystem walk differs:\n%v\n%v", paths(one), paths(got))
	}
}

func TestWalkExclude(t *testing.T) {
	root := t.TempDir()
	build(t, root, sourceTree())
	seen := map[string]bool{}
	got := walkAll(t, root, Options{Exclude: func(p string, isDir bool) bool {
		if _, dup := seen[p]; dup {
			t.Errorf("Exclude called twice for %s", p)
		}
		seen[p] = isDir
		return p == "a" || p == "a.txt" || strings.HasSuffix(p, "/f")
	}})
	for _, p := range paths(got) {
		if p == "a" || strings.HasPrefix(p, "a/") || p == "a.txt" || p == "ro/f" {
			t.Errorf("excluded %s reported", p)
		}
	}
	if _, ok := seen["."]; ok {
		t.Error("Exclude called for the root")
	}
	if _, ok := seen["a/b"]; ok {
		t.Error("excluded directory a descended")
	}
	for p, isDir := range map[string]bool{"a": true, "a.txt": false, "ro": true, "ro/sub": true, "ro/f": false, "link": false} {
		if got, ok := seen[p]; !ok || got != isDir {
			t.Errorf("Exclude(%s): called %v isDir %v, want isDir %v", p, ok, got, isDir)
		}
	}
	if !slices.Contains(paths(got), "ro/sub/g") {
		t.Errorf("ro/sub/g missing: %q", paths(got))
	}
}

func TestWalkErrors(t *testing.T) {
	root := t.TempDir()
	build(t, root, sourceTree())

	t.Run("fn error unchanged", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := Walk(context.Background(), root, Options{}, func(e Entry) error {
			if n++; e.Path == "a/b" {
				return stop
			}
			return nil
		})
		if err != stop {
			t.Fatalf("err = %v, want stop", err)
		}
		if n != 4 { // ".", "Z", "a", "a/b"
			t.Errorf("fn called %d times", n)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		err := Walk(ctx, root, Options{}, func(Entry) error {
			n++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Fatalf("err = %v after %d calls, want context.Canceled after 1", err, n)
		}
	})
	for _, tt := range []struct{ name, root string }{
		{"root symlink", filepath.Join(root, "link")},
		{"root file", filepath.Join(root, "a.txt")},
		{"root missing", filepath.Join(root, "missing")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Walk(context.Background(), tt.root, Options{}, func(Entry) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.root) {
				t.Fatalf("err = %v, want an error naming %s", err, tt.root)
			}
		})
	}
	t.Run("unreadable directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads every directory")
		}
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "locked"), 0o000); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(filepath.Join(dir, "locked"), 0o700)
		err := Walk(context.Background(), dir, Options{}, func(Entry) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "locked") || !errors.Is(err, os.ErrPermission) {
			t.Fatalf("err = %v, want a permission error naming locked", err)
		}
	})
}

// TestWalkVanished covers the branches for entries that disappear or are
// replaced between readdir, lstat and opening a directory.
func TestWalkVanished(t *testing.T) {
	root := t.TempDir()
	build(t, root, sourceTree())
	fd, err := unix.Open(root, dirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	if _, ok, err := lstatAt(fd, "gone", "gone"); ok || err != nil {
		t.Errorf("lstatAt(gone) = %v, %v; want skipped", ok, err)
	}
	e, ok, err := lstatAt(fd, "a", "a")
	if !ok || err != nil {
		t.Fatalf("lstatAt(a) = %v, %v", ok, err)
	}
	called := false
	w := &walker{ctx: context.Background(), root: root, fn: func(Entry) error { called = true; return nil }}
	for _, tt := range []struct {
		name string
		e    Entry
	}{
		{"gone", Entry{Path: "gone", Type: Dir}},
		{"a.txt", Entry{Path: "a.txt", Type: Dir}},     // now a file
		{"link", Entry{Path: "link", Type: Dir}},       // now a symlink
		{"b", Entry{Path: "b", Type: Dir, Dev: e.Dev}}, // another inode
	} {
		if err := w.descend(fd, tt.name, tt.e); err != nil {
			t.Errorf("descend(%s) = %v, want skipped", tt.name, err)
		}
	}
	if called {
		t.Error("fn called for a vanished directory's children")
	}
	if err := w.descend(fd, "a", e); err != nil || !called {
		t.Errorf("descend(a) = %v, called %v", err, called)
	}
}

func TestOpen(t *testing.T) {
	root := t.TempDir()
	build(t, root, sourceTree())
	if err := os.Symlink("a", filepath.Join(root, "alink")); err != nil {
		t.Fatal(err)
	}
	f, err := Open(root, Entry{Path: "a/b", Type: File})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(b) != "hello b" {
		t.Fatalf("read %q, %v", b, err)
	}
	for _, tt := range []struct {
		name string
		e    Entry
	}{
		{"symlink", Entry{Path: "link", Type: File}},
		{"symlink parent", Entry{Path: "alink/b", Type: File}},
		{"fifo", Entry{Path: "b/fifo", Type: File}}, // must not block
		{"directory", Entry{Path: "a", Type: File}},
		{"not a file entry", Entry{Path: "a", Type: Dir}},
		{"root", Entry{Path: ".", Type: File}},
		{"dotdot", Entry{Path: "../x", Type: File}},
		{"missing", Entry{Path: "a/missing", Type: File}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Open(root, tt.e)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.e.Path) && tt.e.Path != "." {
				t.Errorf("error %q does not name %s", err, tt.e.Path)
			}
		})
	}
}

// comparable strips what a restore cannot keep.
func comparable(es []Entry) []Entry {
	var out []Entry
	for _, e := range es {
		e.Inode, e.CTime, e.Dev = 0, 0, 0
		out = append(out, e)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	nodes := sourceTree()
	if os.Geteuid() == 0 {
		nodes = append(nodes, node{"dev", Dir, 0o755, "", 0}, node{"dev/null", CharDevice, 0o666, "", unix.Mkdev(1, 3)})
	}
	build(t, src, nodes)
	dst := filepath.Join(t.TempDir(), "restore", "here")
	writableOnCleanup(t, dst)

	w, err := NewWriter(dst, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var skipped []string
	err = Walk(context.Background(), src, Options{}, func(e Entry) error {
		var r io.Reader
		if e.Type == File {
			f, err := Open(src, e)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		err := w.Put(e, r)
		if errors.Is(err, ErrSkipped) {
			if !strings.Contains(err.Error(), e.Path) {
				t.Errorf("error %q does not name %s", err, e.Path)
			}
			skipped = append(skipped, e.Path)
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(skipped, []string{"sock"}) {
		t.Errorf("skipped %q, want [sock]", skipped)
	}

	want := slices.DeleteFunc(walkAll(t, src, Options{}), func(e Entry) bool { return e.Type == Socket })
	got := walkAll(t, dst, Options{})
	if !slices.Equal(comparable(got), comparable(want)) {
		g, w := comparable(got), comparable(want)
		for i := range max(len(g), len(w)) {
			if i >= len(g) || i >= len(w) || g[i] != w[i] {
				var ge, we Entry
				if i < len(g) {
					ge = g[i]
				}
				if i < len(w) {
					we = w[i]
				}
				t.Errorf("entry %d\n got %+v\nwant %+v", i, ge, we)
			}
		}
	}
	for _, e := range want {
		if e.Type != File {
			continue
		}
		a, err := os.ReadFile(filepath.Join(src, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dst, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: content differs", e.Path)
		}
	}
}

// listDir returns the names in dir.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriterSafety(t *testing.T) {
	outside := t.TempDir()
	target := t.TempDir()
	w, err := NewWriter(target, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, e := range []Entry{
		{Path: "a", Type: Symlink, Link: outside},
		{Path: "in", Type: Symlink, Link: "real"},
		{Path: "real", Type: Dir, Mode: 0o755},
		{Path: "file", Type: File, Mode: 0o644},
	} {
		if err := w.Put(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []Entry{
		{Path: "a/passwd", Type: File, Mode: 0o644},
		{Path: "a/sub/passwd", Type: File, Mode: 0o644},
		{Path: "a/d", Type: Dir, Mode: 0o755},
		{Path: "a/fifo", Type: FIFO, Mode: 0o644},
		{Path: "a/l", Type: Symlink, Link: "x"},
		{Path: "in/x", Type: File, Mode: 0o644},
		{Path: "file/x", Type: File, Mode: 0o644},
	} {
		err := w.Put(e, strings.NewReader("pwned"))
		if err == nil || !strings.Contains(err.Error(), e.Path) {
			t.Errorf("Put(%s) = %v, want an error naming it", e.Path, err)
		}
	}
	if names := listDir(t, outside); len(names) != 0 {
		t.Errorf("written outside the target: %q", names)
	}
	if names := listDir(t, filepath.Join(target, "real")); len(names) != 0 {
		t.Errorf("written through symlink in: %q", names)
	}

	for _, p := range []string{"../x", "/abs", "/", "a//b", "x//y", "x/", "./x", "x/./y", "x/..", "x/../y", "..", "", "x\x00y"} {
		for _, typ := range []Type{File, Dir, Symlink} {
			if err := w.Put(Entry{Path: p, Type: typ, Link: "t"}, nil); err == nil {
				t.Errorf("Put(%q, %s) succeeded", p, typ)
			}
		}
	}
	if err := w.Put(Entry{Path: ".", Type: File}, nil); err == nil {
		t.Error("Put(., file) succeeded")
	}
	if got, want := listDir(t, target), []string{"a", "file", "in", "real"}; !slices.Equal(got, want) {
		t.Errorf("target holds %q, want %q", got, want)
	}
}

func TestWriterReplace(t *testing.T) {
	target := t.TempDir()
	w, err := NewWriter(target, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(e Entry, content string) error {
		t.Helper()
		return w.Put(e, strings.NewReader(content))
	}
	file := Entry{Path: "f", Type: File, Mode: 0o640, MTime: mtimeOf(1)}
	if err := put(file, "first"); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(filepath.Join(target, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := put(file, "second, longer"); err != nil {
		t.Fatal(err)
	}
	// The old file was replaced by rename, not truncated in place.
	if b, _ := io.ReadAll(old); string(b) != "first" {
		t.Errorf("old file now reads %q", b)
	}
	readF := func() string {
		b, err := os.ReadFile(filepath.Join(target, "f"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := readF(); got != "second, longer" {
		t.Errorf("f = %q", got)
	}

	// A failing reader leaves the existing file and no temporary file.
	err = w.Put(file, io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("boom"))))
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Put with failing reader = %v", err)
	}
	if got := readF(); got != "second, longer" {
		t.Errorf("f = %q after failed Put", got)
	}

	// Each type replaces an existing non-directory.
	for _, e := range []Entry{
		{Path: "f", Type: Symlink, Link: "target"},
		{Path: "f", Type: FIFO, Mode: 0o600},
		{Path: "f", Type: Dir, Mode: 0o755},
		{Path: "f/g", Type: File, Mode: 0o600},
	} {
		if err := put(e, "x"); err != nil {
			t.Fatalf("Put %s over existing: %v", e.Type, err)
		}
	}
	// Nothing but a directory replaces a directory.
	for _, e := range []Entry{
		{Path: "f", Type: File, Mode: 0o644},
		{Path: "f", Type: Symlink, Link: "x"},
		{Path: "f", Type: FIFO, Mode: 0o644},
	} {
		if err := put(e, "x"); err == nil {
			t.Errorf("Put %s over a directory succeeded", e.Type)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, target); !slices.Equal(got, []string{"f"}) {
		t.Errorf("target holds %q, want [f] (temporary files left?)", got)
	}
	if got := listDir(t, filepath.Join(target, "f")); !slices.Equal(got, []string{"g"}) {
		t.Errorf("f holds %q, want [g]", got)
	}
}

func TestWriterMissingParents(t *testing.T) {
	target := t.TempDir()
	w, err := NewWriter(target, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(Entry{Path: "x/y/z", Type: File, Mode: 0o644}, strings.NewReader("z")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x", "x/y"} {
		fi, err := os.Lstat(filepath.Join(target, p))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a 0700 directory", p, fi, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(target, "x/y/z")); err != nil || string(b) != "z" {
		t.Errorf("x/y/z = %q, %v", b, err)
	}
}

func TestWriterSkipped(t *testing.T) {
	target := t.TempDir()
	w, err := NewWriter(target, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.mknod = false // as if not root
	for _, e := range []Entry{
		{Path: "s", Type: Socket},
		{Path: "d/blk", Type: Device, Rdev: unix.Mkdev(7, 0)},
		{Path: "d/chr", Type: CharDevice, Rdev: unix.Mkdev(1, 3)},
	} {
		err := w.Put(e, nil)
		if !errors.Is(err, ErrSkipped) || !strings.Contains(err.Error(), e.Path) {
			t.Errorf("Put(%s) = %v, want ErrSkipped naming it", e.Path, err)
		}
	}
	if err := w.Put(Entry{Path: "u", Type: "whiteout"}, nil); err == nil || errors.Is(err, ErrSkipped) {
		t.Errorf("Put(unknown type) = %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, target); len(got) != 0 {
		t.Errorf("target holds %q", got)
	}
	if err := w.Put(Entry{Path: "late", Type: Dir}, nil); err == nil {
		t.Error("Put after Close succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

func TestWriterOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	for _, owner := range []bool{true, false} {
		target := t.TempDir()
		w, err := NewWriter(target, WriterOptions{Owner: &owner})
		if err != nil {
			t.Fatal(err)
		}
		entries := []Entry{
			{Path: "d", Type: Dir, Mode: 0o755},
			{Path: "d/f", Type: File, Mode: 0o4755},
			{Path: "d/l", Type: Symlink, Link: "/nonexistent"},
			{Path: "d/p", Type: FIFO, Mode: 0o600},
		}
		for _, e := range entries {
			e.UID, e.GID = 1234, 5678
			if err := w.Put(e, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(target, e.Path), &st); err != nil {
				t.Fatal(err)
			}
			wantUID, wantGID := uint32(0), uint32(os.Getegid())
			if owner {
				wantUID, wantGID = 1234, 5678
			}
			if st.Uid != wantUID || st.Gid != wantGID {
				t.Errorf("owner=%v %s: %d:%d, want %d:%d", owner, e.Path, st.Uid, st.Gid, wantUID, wantGID)
			}
			if e.Type == File && st.Mode&0o7777 != 0o4755 {
				t.Errorf("owner=%v %s: mode %#o, setuid lost", owner, e.Path, st.Mode&0o7777)
			}
		}
	}
}
