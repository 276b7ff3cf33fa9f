package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store/mem"
)

// memTree is a NodeSource over nodes kept in memory; it counts opens.
type memTree struct {
	nodes   []repo.Node
	content map[string][]byte
	opened  []string
	failAt  string // Walk fails at this path
	vanish  string // Open reports this file gone
}

func newMemTree() *memTree {
	return &memTree{content: map[string][]byte{}, nodes: []repo.Node{{Path: ".", Type: repo.NodeDir, Mode: 0o755, MTime: 1}}}
}

func (m *memTree) dir(path string) {
	m.nodes = append(m.nodes, repo.Node{Path: path, Type: repo.NodeDir, Mode: 0o750, MTime: 2})
}

func (m *memTree) file(path string, data []byte, mtime int64) {
	m.nodes = append(m.nodes, repo.Node{Path: path, Type: repo.NodeFile, Mode: 0o640, UID: 7, GID: 8,
		MTime: mtime, CTime: mtime, Inode: uint64(len(m.nodes) + 100), Size: int64(len(data))})
	m.content[path] = data
}

func (m *memTree) symlink(path, target string) {
	m.nodes = append(m.nodes, repo.Node{Path: path, Type: repo.NodeSymlink, Mode: 0o777, MTime: 3, Link: target})
}

// set replaces a file's content and mtime.
func (m *memTree) set(path string, data []byte, mtime int64) {
	for i := range m.nodes {
		if m.nodes[i].Path == path {
			m.nodes[i].Size, m.nodes[i].MTime, m.nodes[i].CTime = int64(len(data)), mtime, mtime
		}
	}
	m.content[path] = data
}

func (m *memTree) Walk(ctx context.Context, fn func(*repo.Node) error) error {
	for _, n := range m.nodes {
		if n.Path == m.failAt {
			return fmt.Errorf("walk %s: permission denied", n.Path)
		}
		n := n
		if err := fn(&n); err != nil {
			return err
		}
	}
	return nil
}

func (m *memTree) Open(n *repo.Node) (io.ReadCloser, error) {
	if n.Path == m.vanish {
		return nil, fs.ErrNotExist
	}
	m.opened = append(m.opened, n.Path)
	return io.NopCloser(bytes.NewReader(m.content[n.Path])), nil
}

func treeSnap(t testing.TB, r *repo.Repository, src repo.NodeSource) *repo.Snapshot {
	t.Helper()
	s, err := r.SnapshotTree(context.Background(), src, repo.SnapshotOptions{Name: "dir", Host: "h"})
	if err != nil {
		t.Fatalf("snapshot tree: %v", err)
	}
	return s
}

// restoreTree returns every visited node and the content of files.
func restoreTree(r *repo.Repository, s *repo.Snapshot, want func(*repo.Node) bool) ([]repo.Node, map[string][]byte, error) {
	var nodes []repo.Node
	content := map[string][]byte{}
	err := r.RestoreTree(context.Background(), s, want, true, func(n *repo.Node, rd io.Reader) error {
		nodes = append(nodes, *n)
		if rd != nil {
			b, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			content[n.Path] = b
		}
		return nil
	}, nil)
	return nodes, content, err
}

func sampleTree() *memTree {
	m := newMemTree()
	m.dir("a")
	m.file("a/big", randomData(1, 300<<10), 10)
	m.dir("a/empty")
	m.file("a/small", []byte("hello"), 11)
	m.file("a.txt", randomData(2, 20<<10), 12)
	m.file("empty", nil, 13)
	m.symlink("link", "a/small")
	m.dir("many")
	for i := range 40 {
		m.file(fmt.Sprintf("many/f%02d", i), randomData(byte(50+i), 3000), 20)
	}
	slices.SortFunc(m.nodes, func(a, b repo.Node) int { return repo.ComparePath(a.Path, b.Path) })
	return m
}

func TestTreeSnapshotRoundTrip(t *testing.T) {
	m := sampleTree()
	r := initRepo(t, mem.New(), smallChunker())
	s := treeSnap(t, r, m)
	if s.Kind != repo.KindTree || s.Nodes != int64(len(m.nodes)) || s.UnchangedFiles != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	nodes, content, err := restoreTree(r, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != len(m.nodes) {
		t.Fatalf("restored %d nodes, want %d", len(nodes), len(m.nodes))
	}
	for i, n := range nodes {
		w := m.nodes[i]
		if n.Path != w.Path || n.Type != w.Type || n.Mode != w.Mode || n.MTime != w.MTime || n.Link != w.Link || n.UID != w.UID {
			t.Errorf("node %d: %+v, want %+v", i, n, w)
		}
		if n.Type == repo.NodeFile && !bytes.Equal(content[n.Path], m.content[n.Path]) {
			t.Errorf("content of %s differs", n.Path)
		}
	}

	// A subset restores only what it names.
	nodes, content, err = restoreTree(r, s, func(n *repo.Node) bool { return strings.HasPrefix(n.Path, "a/") })
	if err != nil || len(nodes) != 3 || len(content) != 2 || !bytes.Equal(content["a/small"], []byte("hello")) {
		t.Fatalf("subset: %d nodes, %d files, %v", len(nodes), len(content), err)
	}
	if rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	// A directory tree is not a stream.
	if err := r.RestoreStream(context.Background(), s, io.Discard, nil); !errors.Is(err, repo.ErrNotStream) {
		t.Fatalf("RestoreStream of a tree: %v", err)
	}
}

func TestTreeSnapshotUnchangedFiles(t *testing.T) {
	m := sampleTree()
	r := initRepo(t, mem.New(), smallChunker())
	first := treeSnap(t, r, m)
	files := len(m.opened)

	// Night two: one file changed a little; nothing else is read again.
	big := bytes.Clone(m.content["a/big"])
	copy(big[100<<10:], "a small edit")
	m.set("a/big", big, 99)
	m.opened = nil
	second := treeSnap(t, r, m)
	if !slices.Equal(m.opened, []string{"a/big"}) {
		t.Fatalf("night two opened %v, want only a/big", m.opened)
	}
	if second.UnchangedFiles != int64(files-1) {
		t.Fatalf("unchanged files %d, want %d", second.UnchangedFiles, files-1)
	}
	if second.AddedBytes > first.AddedBytes/10 {
		t.Fatalf("night two added %d bytes, night one %d", second.AddedBytes, first.AddedBytes)
	}
	_, content, err := restoreTree(r, second, nil)
	if err != nil || !bytes.Equal(content["a/big"], big) || !bytes.Equal(content["many/f07"], m.content["many/f07"]) {
		t.Fatalf("restore night two: %v", err)
	}

	// The first night goes; the second still restores and checks clean.
	if err := prLocked(t, r, true, func() error {
		return r.RemoveSnapshots(context.Background(), []crypt.ID{first.ID})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := prPrune(t, r, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after prune: %v %+v", err, rep)
	}
	_, content, err = restoreTree(r, second, nil)
	if err != nil || !bytes.Equal(content["a.txt"], m.content["a.txt"]) {
		t.Fatalf("restore after prune: %v", err)
	}
}

func TestTreeSnapshotFailures(t *testing.T) {
	r := initRepo(t, mem.New(), smallChunker())
	ctx := context.Background()
	count := func() int {
		list, err := r.Snapshots(ctx, repo.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}

	m := sampleTree()
	m.failAt = "a/small"
	if _, err := r.SnapshotTree(ctx, m, repo.SnapshotOptions{Name: "dir"}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("failing walk: %v", err)
	}
	m = sampleTree()
	m.nodes[1], m.nodes[2] = m.nodes[2], m.nodes[1]
	if _, err := r.SnapshotTree(ctx, m, repo.SnapshotOptions{Name: "dir"}); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("unordered source: %v", err)
	}
	if _, err := r.SnapshotTree(ctx, newMemTree(), repo.SnapshotOptions{Name: "dir"}); !errors.Is(err, repo.ErrEmpty) {
		t.Fatalf("empty directory: %v", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d snapshots after failures", n)
	}

	// A file that vanished after the walk saw it is left out.
	m = sampleTree()
	m.vanish = "a.txt"
	s := treeSnap(t, r, m)
	nodes, _, err := restoreTree(r, s, nil)
	if err != nil || slices.ContainsFunc(nodes, func(n repo.Node) bool { return n.Path == "a.txt" }) {
		t.Fatalf("vanished file: %v", err)
	}

	// A corrupt data blob fails the file that holds it, by name.
	m = sampleTree()
	s = treeSnap(t, r, m)
	be := r.Backend().(*mem.Backend)
	for _, l := range blobsOf(t, r, pack.DataBlob) {
		if l.Entry.RawLength == 5 { // "hello"
			rewrite(t, be, packHandle(l), flipBit(int(l.Entry.Offset)+20, 1))
		}
	}
	r2 := repotest.Reopen(t, be)
	s2, err := r2.FindSnapshot(ctx, s.ID.String(), repo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := restoreTree(r2, s2, nil); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("restore of a corrupt blob: %v", err)
	}
}
