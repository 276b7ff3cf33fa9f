package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/bk-backup/bk/crypt"
)

// NodeSource yields a directory tree for SnapshotTree.
type NodeSource interface {
	// Walk calls fn for every node in canonical order (ComparePath), the
	// root "." first, and stops at fn's first error, which it returns.
	// SnapshotTree sets Chunks and Hash, and the Size of regular files to
	// the bytes it read.
	Walk(ctx context.Context, fn func(n *Node) error) error
	// Open opens the content of regular file n; it is called from fn. An
	// error matching fs.ErrNotExist means the file vanished since the walk
	// saw it: the node is left out.
	Open(n *Node) (io.ReadCloser, error)
}

// pendingNode is a catalogue node waiting for its file's hash.
type pendingNode struct {
	n    *Node
	mark <-chan partStats
}

// treeWrite is the state of one SnapshotTree call.
type treeWrite struct {
	s   *session
	sc  *snapScope
	src NodeSource

	// From the previous snapshot of the source: its content chunks, a
	// cursor over its catalogue, and the delta bases of both streams.
	prevChunks  *prevStream
	prevCursor  *catalogCursor
	deltaChunks *prevStream
	deltaCat    *prevStream
	parent      *crypt.ID

	content     streamStats
	catalog     partStats
	catalogRoot crypt.ID
	nodes       int64
	unchanged   int64
}

// loadPrevious reads what the previous snapshot p offers: its chunk list,
// for unchanged files and delta bases, and its catalogue.
func (t *treeWrite) loadPrevious(ctx context.Context, p *Snapshot, deltas bool) error {
	r := t.s.r
	chunks, err := r.previousStream(ctx, p.ID, p.Tree)
	if err != nil {
		return err
	}
	if chunks == nil {
		return nil // too large to keep in memory: read every file
	}
	t.prevChunks = chunks
	t.prevCursor = r.openCatalogCursor(ctx, p)
	if deltas {
		cat, err := r.previousStream(ctx, p.ID, *p.Catalog)
		if err != nil {
			return err
		}
		t.deltaChunks, t.deltaCat, t.parent = chunks, cat, &p.ID
	}
	return nil
}

func (t *treeWrite) closePrevious() {
	if t.prevCursor != nil {
		t.prevCursor.close()
	}
}

// run writes the content and catalogue streams and waits for them. A
// failure of the source stops this snapshot, not the session.
func (t *treeWrite) run(ctx context.Context, allowEmpty bool) error {
	s := t.s
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	content := s.newStream(t.sc, t.deltaChunks)
	catalog := s.newStream(t.sc, t.deltaCat)

	pr, pw := io.Pipe()
	catDone := make(chan error, 1)
	go func() {
		mark, err := catalog.write(pr)
		if err == nil {
			var ok bool
			if t.catalog, ok = <-mark; !ok {
				err = s.err()
			}
		}
		if err != nil {
			_ = pr.CloseWithError(err)
		}
		catDone <- err
	}()

	pending := make(chan pendingNode, 256)
	encDone := make(chan error, 1)
	go func() {
		enc := newCatalogEncoder(pw)
		var err error
		for p := range pending {
			if err != nil {
				continue // drain after a failure
			}
			if p.mark != nil {
				ps, ok := <-p.mark
				if !ok {
					err = cmp.Or(s.err(), errors.New("the content stream stopped"))
					continue
				}
				hash := ps.hash
				p.n.Size, p.n.Chunks, p.n.Hash = ps.size, ps.chunks, &hash
			}
			err = enc.encode(p.n)
		}
		if err == nil {
			err = enc.flush()
		}
		if err != nil {
			stop(err)
			_ = pw.CloseWithError(err)
		} else {
			_ = pw.Close()
		}
		encDone <- err
	}()

	last := ""
	walkErr := t.src.Walk(ctx, func(n *Node) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err := s.err(); err != nil {
			return err
		}
		if !validPath(n.Path) || last == "" && n.Path != "." || last != "" && ComparePath(last, n.Path) >= 0 {
			return fmt.Errorf("source: node %q is out of order after %q", n.Path, last)
		}
		last = n.Path
		p, err := t.node(content, n)
		if err != nil || p.n == nil {
			return err
		}
		t.nodes++
		select {
		case pending <- p:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(pending)
	encErr := <-encDone
	catErr := <-catDone
	var err error
	t.content, err = content.close()
	catStats, cerr := catalog.close()
	t.catalogRoot = catStats.root
	switch {
	case walkErr != nil:
		return walkErr
	case encErr != nil:
		return encErr
	}
	if err = cmp.Or(catErr, err, cerr); err != nil {
		return err
	}
	if t.nodes <= 1 && !allowEmpty {
		return fmt.Errorf("the directory is empty (pass --allow-empty to store it): %w", ErrEmpty)
	}
	return nil
}

// node queues the content of one node: unchanged files from the previous
// snapshot, other regular files read through the content stream.
func (t *treeWrite) node(content *streamWriter, n *Node) (pendingNode, error) {
	n.Chunks, n.Hash = 0, nil
	if n.Type != NodeFile {
		n.Size = 0
		return pendingNode{n: n}, nil
	}
	if entries, prev := t.unchangedFile(n); prev != nil {
		content.appendKnown(entries)
		n.Size, n.Chunks, n.Hash = prev.Size, prev.Chunks, prev.Hash
		t.unchanged++
		return pendingNode{n: n}, nil
	}
	f, err := t.src.Open(n)
	if errors.Is(err, fs.ErrNotExist) {
		return pendingNode{}, nil
	}
	if err != nil {
		return pendingNode{}, err
	}
	mark, err := content.write(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", n.Path, cerr)
	}
	if err != nil {
		return pendingNode{}, fmt.Errorf("read %s: %w", n.Path, err)
	}
	return pendingNode{n: n, mark: mark}, nil
}

// unchangedFile returns the chunks and node of n in the previous snapshot
// when n is unchanged there and every chunk is still stored.
func (t *treeWrite) unchangedFile(n *Node) ([]TreeEntry, *Node) {
	if t.prevCursor == nil {
		return nil, nil
	}
	prev, first := t.prevCursor.find(n.Path)
	if prev == nil || prev.Type != NodeFile || prev.Hash == nil || prev.Size != n.Size ||
		prev.MTime != n.MTime || prev.CTime != n.CTime || prev.Inode != n.Inode {
		return nil, nil
	}
	p := t.prevChunks
	if first+prev.Chunks > int64(len(p.ids)) {
		return nil, nil
	}
	entries := make([]TreeEntry, 0, prev.Chunks)
	var size int64
	for k := first; k < first+prev.Chunks; k++ {
		if !t.s.has(p.ids[k]) {
			return nil, nil
		}
		begin := int64(0)
		if k > 0 {
			begin = p.ends[k-1]
		}
		entries = append(entries, TreeEntry{ID: p.ids[k], Size: p.ends[k] - begin, Head: p.heads[k]})
		size += p.ends[k] - begin
	}
	if size != prev.Size {
		return nil, nil
	}
	return entries, prev
}

// catalogCursor reads the previous snapshot's catalogue in step with the
// walk, so looking up the previous version of a path costs no memory per
// node. Paths arrive in canonical order, so the cursor only moves forward.
type catalogCursor struct {
	cancel context.CancelFunc
	pr     *io.PipeReader
	dec    *catalogDecoder
	cur    *Node
	first  int64 // index of cur's first chunk in the content stream
	next   int64 // index of the chunk after cur's
	done   bool
}

// openCatalogCursor starts reading the catalogue of snapshot p. A
// catalogue that cannot be read only disables the unchanged-file shortcut.
func (r *Repository) openCatalogCursor(ctx context.Context, p *Snapshot) *catalogCursor {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		cat := &Snapshot{ID: p.ID, Tree: *p.Catalog, Size: p.CatalogSize, StreamHash: p.StreamHash}
		pw.CloseWithError(r.RestoreStream(ctx, cat, pw, nil))
	}()
	return &catalogCursor{cancel: cancel, pr: pr, dec: newCatalogDecoder(pr)}
}

// find returns the node of path and the index of its first chunk, or nil.
func (c *catalogCursor) find(path string) (*Node, int64) {
	for !c.done {
		if c.cur != nil {
			switch cmp := ComparePath(c.cur.Path, path); {
			case cmp == 0:
				return c.cur, c.first
			case cmp > 0:
				return nil, 0
			}
		}
		n, err := c.dec.next()
		if err != nil {
			c.done = true
			break
		}
		c.cur, c.first = n, c.next
		c.next += n.Chunks
	}
	return nil, 0
}

func (c *catalogCursor) close() {
	c.cancel()
	_ = c.pr.Close()
}
