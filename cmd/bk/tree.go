package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bk-backup/bk/engines/dir"
	"github.com/bk-backup/bk/repo"
)

// isTreeSource reports whether a source names a directory: file:///path,
// an absolute path or one starting with ./ or ../.
func isTreeSource(src string) bool {
	return strings.HasPrefix(src, "file:") || strings.HasPrefix(src, "/") ||
		strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") || src == "." || src == ".."
}

// treeSource is a directory or volume (file:///path or a plain path): a
// repo.NodeSource over engines/dir.
type treeSource struct {
	root string // absolute, cleaned
}

// openTreeSource parses file:///abs/path or a path. The folder must exist.
func openTreeSource(src string) (*treeSource, string, error) {
	p := src
	if strings.HasPrefix(src, "file:") {
		u, err := url.Parse(src)
		if err != nil || u.Host != "" && u.Host != "localhost" || u.Path == "" {
			return nil, "", usagef("source %q is not a file:///absolute/path URL", src)
		}
		p = u.Path
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, "", usagef("source %q: %v", src, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, "", fmt.Errorf("source %s: %w: %w", abs, err, errSource)
	}
	if !fi.IsDir() {
		return nil, "", usagef("source %s is not a folder; for a single file use --stdin or -- cat FILE", abs)
	}
	return &treeSource{root: abs}, "dir:" + abs, nil
}

// Source describes the source for snapshot metadata.
func (t *treeSource) Source() string { return (&url.URL{Scheme: "file", Path: t.root}).String() }

// Walk implements repo.NodeSource. Errors of the file system (not of fn)
// match errSource.
func (t *treeSource) Walk(ctx context.Context, fn func(*repo.Node) error) error {
	var fnErr error
	err := dir.Walk(ctx, t.root, dir.Options{}, func(e dir.Entry) error {
		n := nodeOf(e)
		fnErr = fn(&n)
		return fnErr
	})
	if err != nil && err != fnErr && ctx.Err() == nil {
		return fmt.Errorf("%w: %w", errSource, err)
	}
	return err
}

// Open implements repo.NodeSource. Its errors, and those of reading the
// file, match errSource (fs.ErrNotExist stays visible).
func (t *treeSource) Open(n *repo.Node) (io.ReadCloser, error) {
	f, err := dir.Open(t.root, entryOf(n))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSource, err)
	}
	return sourceFile{f}, nil
}

// sourceFile marks read errors as source failures.
type sourceFile struct{ f *os.File }

func (s sourceFile) Read(b []byte) (int, error) {
	n, err := s.f.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errSource, err)
	}
	return n, err
}

func (s sourceFile) Close() error { return s.f.Close() }

func nodeOf(e dir.Entry) repo.Node {
	return repo.Node{Path: e.Path, Type: string(e.Type), Mode: e.Mode, UID: e.UID, GID: e.GID,
		MTime: e.MTime, CTime: e.CTime, Inode: e.Inode, Dev: e.Dev, Rdev: e.Rdev, Size: e.Size, Link: e.Link}
}

func entryOf(n *repo.Node) dir.Entry {
	return dir.Entry{Path: n.Path, Type: dir.Type(n.Type), Mode: n.Mode, UID: n.UID, GID: n.GID,
		MTime: n.MTime, CTime: n.CTime, Inode: n.Inode, Dev: n.Dev, Rdev: n.Rdev, Size: n.Size, Link: n.Link}
}

// includeFilter returns which nodes a restore or listing selects: those
// under prefix (a path in the snapshot, "" or "." for all) that match one of
// the globs, or lie under a directory that does (nil globs: all). Globs
// use path.Match syntax against the node's path in the snapshot.
func includeFilter(prefix string, globs []string) (func(*repo.Node) bool, error) {
	prefix = strings.Trim(path.Clean("/"+prefix), "/")
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return nil, usagef("--include %q is not a valid pattern: %v", g, err)
		}
	}
	return func(n *repo.Node) bool {
		if prefix != "" && n.Path != prefix && !strings.HasPrefix(n.Path, prefix+"/") {
			return false
		}
		if len(globs) == 0 {
			return true
		}
		for p := n.Path; p != "." && p != ""; p = path.Dir(p) {
			for _, g := range globs {
				if ok, _ := path.Match(strings.Trim(g, "/"), p); ok {
					return true
				}
			}
		}
		return false
	}, nil
}

// treeRestoreStats is what restoring a directory tree did.
type treeRestoreStats struct {
	Nodes   int64
	Files   int64
	Skipped []string // entries this system cannot recreate
}

// restoreTree writes the selected nodes of a directory snapshot under
// target, each file through a temporary file that is renamed only after
// its content verified.
func restoreTree(ctx context.Context, r *repo.Repository, snap *repo.Snapshot, target string, want func(*repo.Node) bool, p *repo.Progress) (*treeRestoreStats, error) {
	w, err := dir.NewWriter(target, dir.WriterOptions{})
	if err != nil {
		return nil, err
	}
	st := &treeRestoreStats{}
	err = r.RestoreTree(ctx, snap, want, true, func(n *repo.Node, content io.Reader) error {
		err := w.Put(entryOf(n), content)
		if errors.Is(err, dir.ErrSkipped) {
			st.Skipped = append(st.Skipped, n.Path)
			return nil
		}
		if err != nil {
			return err
		}
		st.Nodes++
		if n.Type == repo.NodeFile {
			st.Files++
		}
		return nil
	}, p)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return st, err
}
