package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/bk-backup/bk/crypt"
)

// TreeVisitor receives the nodes of a directory snapshot from RestoreTree,
// in canonical order. content is nil except for regular files whose
// content was asked for; it yields the file's bytes and fails at the end if
// they do not match the catalogue's size and hash. The visitor need not
// read content to the end.
type TreeVisitor func(n *Node, content io.Reader) error

// RestoreTree reads a directory snapshot: it calls visit for every node
// that want accepts (nil: all), and fetches the content of regular files
// when withContent is set. Only the chunks of those files are read; every
// blob is verified against its ID, every file against its hash, and the
// catalogue against the snapshot's hash.
func (r *Repository) RestoreTree(ctx context.Context, snap *Snapshot, want func(*Node) bool, withContent bool, visit TreeVisitor, p *Progress) error {
	if snap.Kind != KindTree || snap.Catalog == nil {
		return fmt.Errorf("snapshot %s is a %s, not a directory tree", snap.ID.Short(), snap.Kind)
	}
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// The catalogue streams through a pipe; the content tree is walked in
	// step with it.
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		cat := &Snapshot{ID: snap.ID, Tree: *snap.Catalog, Size: snap.CatalogSize, StreamHash: snap.StreamHash}
		pw.CloseWithError(r.RestoreStream(ctx, cat, pw, nil))
	}()
	dec := newCatalogDecoder(pr)
	pipe := r.newRestorePipe(ctx, cancel)
	defer pipe.wait()
	defer cancel(nil) // stops the producer and workers before wait

	// Producer: one marker job per visited node, followed by the fetch jobs
	// of its content.
	pipe.produce(func() error {
		chunks, stop := iter.Pull2(r.treeEntries(ctx, snap.Tree))
		defer stop()
		for {
			n, err := dec.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("snapshot %s: catalogue: %w", snap.ID.Short(), err)
			}
			visited := want == nil || want(n)
			fetch := visited && withContent && n.Type == NodeFile
			if visited {
				done := make(chan struct{})
				close(done)
				if err := pipe.send(&restoreJob{node: n, done: done}, false); err != nil {
					return err
				}
			}
			for k := int64(0); k < n.Chunks; k++ {
				e, err, ok := chunks()
				if !ok {
					err = corrupt(nil, "the catalogue lists more chunks than the content stream holds")
				}
				if err != nil {
					return fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err)
				}
				if fetch {
					if err := pipe.send(&restoreJob{id: e.ID, size: e.Size, done: make(chan struct{})}, true); err != nil {
						return err
					}
				}
			}
		}
		if _, err, ok := chunks(); ok || err != nil {
			return fmt.Errorf("snapshot %s: %w", snap.ID.Short(), cmp.Or(err,
				corrupt(nil, "the content stream holds chunks the catalogue does not list")))
		}
		return nil
	})

	for {
		j, err := pipe.next()
		if err != nil {
			return err
		}
		if j == nil {
			break
		}
		n := j.node
		var content *fileReader
		if withContent && n.Type == NodeFile {
			content = &fileReader{n: n, pipe: pipe, p: p, hasher: r.key.NewIDHasher()}
		}
		if content == nil {
			err = visit(n, nil)
		} else {
			err = visit(n, content)
			if err == nil {
				err = content.drain()
			}
		}
		if err != nil {
			cancel(err)
			return err
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// The catalogue's own hash is checked when its stream ends.
	if _, err := pr.Read(make([]byte, 1)); err != io.EOF {
		return cmp.Or(err, corrupt(nil, "snapshot %s: trailing catalogue bytes", snap.ID.Short()))
	}
	return nil
}

// treeEntries yields the level-0 entries of the tree under root in order.
func (r *Repository) treeEntries(ctx context.Context, root crypt.ID) iter.Seq2[TreeEntry, error] {
	return func(yield func(TreeEntry, error) bool) {
		stopped := errors.New("stopped")
		err := r.walkTree(ctx, root, -1, func(e TreeEntry) error {
			if !yield(e, nil) {
				return stopped
			}
			return nil
		})
		if err != nil && err != stopped {
			yield(TreeEntry{}, err)
		}
	}
}

// fileReader yields one file's bytes from the restore pipeline and checks
// them against the catalogue at the end.
type fileReader struct {
	n      *Node
	pipe   *restorePipe
	p      *Progress
	hasher interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
	cur   *restoreJob
	rest  []byte
	taken int64 // chunks taken from order
	size  int64
	err   error
}

func (f *fileReader) Read(b []byte) (int, error) {
	for len(f.rest) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.err = f.next()
	}
	n := copy(b, f.rest)
	f.rest = f.rest[n:]
	return n, nil
}

// next moves to the file's next chunk, or checks the file at its end.
func (f *fileReader) next() error {
	if f.cur != nil {
		f.pipe.release(f.cur)
		f.cur = nil
	}
	if f.taken == f.n.Chunks {
		var sum crypt.ID
		copy(sum[:], f.hasher.Sum(nil))
		switch {
		case f.size != f.n.Size:
			return corrupt(nil, "file %s: restored %d bytes, the catalogue says %d", f.n.Path, f.size, f.n.Size)
		case f.n.Hash == nil || sum != *f.n.Hash:
			return corrupt(nil, "file %s does not match its recorded hash", f.n.Path)
		}
		return io.EOF
	}
	j, err := f.pipe.next()
	if err != nil {
		return err
	}
	if j == nil {
		return corrupt(nil, "file %s: content ended early", f.n.Path)
	}
	f.taken++
	if j.err != nil {
		return fmt.Errorf("file %s: %w", f.n.Path, j.err)
	}
	f.cur, f.rest = j, j.data
	f.hasher.Write(j.data)
	f.size += int64(len(j.data))
	f.p.addBytes(int64(len(j.data)))
	return nil
}

// drain consumes what the visitor left unread, so the pipeline stays in
// step, and reports a content error the visitor did not see.
func (f *fileReader) drain() error {
	for f.err == nil {
		f.rest = nil
		f.err = f.next()
	}
	if f.err == io.EOF {
		return nil
	}
	return f.err
}
