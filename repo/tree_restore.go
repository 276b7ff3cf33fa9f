package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
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
	chunks, stop := iter.Pull2(r.treeEntries(ctx, snap.Tree))
	defer stop()

	workers := r.workers + 1
	jobs := make(chan *restoreJob, workers)
	order := make(chan *restoreJob, 4*workers+4)
	bufs := &sync.Pool{New: func() any { b := make([]byte, 0, r.chunkBufSize()); return &b }}

	// Producer: one marker job per visited node, followed by the fetch jobs
	// of its content.
	go func() {
		defer close(jobs)
		defer close(order)
		send := func(j *restoreJob, fetch bool) bool {
			select {
			case order <- j:
			case <-ctx.Done():
				return false
			}
			if !fetch {
				return true
			}
			select {
			case jobs <- j:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			n, err := dec.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				cancel(fmt.Errorf("snapshot %s: catalogue: %w", snap.ID.Short(), err))
				return
			}
			visited := want == nil || want(n)
			fetch := visited && withContent && n.Type == NodeFile
			if visited {
				done := make(chan struct{})
				close(done)
				if !send(&restoreJob{node: n, done: done}, false) {
					return
				}
			}
			for k := int64(0); k < n.Chunks; k++ {
				e, err, ok := chunks()
				if !ok {
					err = corrupt(nil, "the catalogue lists more chunks than the content stream holds")
				}
				if err != nil {
					cancel(fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err))
					return
				}
				if fetch && !send(&restoreJob{id: e.ID, size: e.Size, done: make(chan struct{})}, true) {
					return
				}
			}
		}
		if _, err, ok := chunks(); ok || err != nil {
			cancel(fmt.Errorf("snapshot %s: %w", snap.ID.Short(), cmp.Or(err,
				corrupt(nil, "the content stream holds chunks the catalogue does not list"))))
		}
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.fetchBlobs(ctx, jobs, bufs)
		}()
	}
	defer wg.Wait()

	for j := range order {
		n := j.node
		var content *fileReader
		if withContent && n.Type == NodeFile {
			content = &fileReader{r: r, ctx: ctx, n: n, order: order, bufs: bufs, p: p, hasher: r.key.NewIDHasher()}
		}
		var err error
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

// fetchBlobs loads the data blobs of jobs until the channel closes.
func (r *Repository) fetchBlobs(ctx context.Context, jobs <-chan *restoreJob, bufs *sync.Pool) {
	var scratch []byte
	for j := range jobs {
		j.buf = bufs.Get().(*[]byte)
		j.data, scratch, j.err = r.loadBlob(ctx, pack.DataBlob, j.id, *j.buf, scratch)
		if j.err == nil && int64(len(j.data)) != j.size {
			loc, _ := r.idx.Lookup(j.id)
			j.err = &BlobError{Pack: loc.Pack.ID, Blob: j.id,
				Err: corrupt(nil, "blob has %d bytes, the tree says %d", len(j.data), j.size)}
		}
		close(j.done)
	}
}

// fileReader yields one file's bytes from the restore pipeline and checks
// them against the catalogue at the end.
type fileReader struct {
	r      *Repository
	ctx    context.Context
	n      *Node
	order  <-chan *restoreJob
	bufs   *sync.Pool
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
		*f.cur.buf = f.cur.data[:0]
		f.bufs.Put(f.cur.buf)
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
	var j *restoreJob
	select {
	case j = <-f.order:
	case <-f.ctx.Done():
		return context.Cause(f.ctx)
	}
	if j == nil {
		return cmp.Or(context.Cause(f.ctx), corrupt(nil, "file %s: content ended early", f.n.Path))
	}
	select {
	case <-j.done:
	case <-f.ctx.Done():
		return context.Cause(f.ctx)
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
