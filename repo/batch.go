package repo

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/bk-backup/bk/crypt"
)

// Batch writes several snapshots through one write session, so they share
// packs: the dumps of many small databases fill packs together instead of
// each leaving a partial one. Its snapshot methods may run concurrently. A
// snapshot is saved as soon as the blobs it needs are stored and indexed,
// so a crash later in the batch keeps it. A snapshot whose source fails
// records nothing and leaves the others alone; a repository error (a failed
// upload) fails every snapshot still running. Close must be called once,
// after the last snapshot method returned.
type Batch struct {
	r *Repository
	s *session
}

// NewBatch starts a batch. The caller should hold a shared lock until Close.
func (r *Repository) NewBatch(ctx context.Context) (*Batch, error) {
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	return &Batch{r: r, s: r.newSession(ctx)}, nil
}

// Close stores what is left and ends the batch.
func (b *Batch) Close() error { return b.s.finish() }

// Abort ends the batch without storing the open packs.
func (b *Batch) Abort() { b.s.abort() }

// SnapshotStream stores everything rd yields as one stream and records a
// snapshot. If rd fails (returns an error other than io.EOF), or the stream is
// empty and not allowed, nothing is recorded and the error is returned. The
// caller should hold a shared lock.
func (r *Repository) SnapshotStream(ctx context.Context, rd io.Reader, opts SnapshotOptions) (*Snapshot, error) {
	return r.single(ctx, func(b *Batch) (*Snapshot, error) { return b.SnapshotStream(ctx, rd, opts) })
}

// SnapshotTree stores a directory tree and records a snapshot of kind
// KindTree (FORMAT.md §7.1). A regular file whose size, mtime, ctime and
// inode equal those of the same path in the previous snapshot of the source
// is not read again: its chunks are taken from that snapshot. If the source
// fails, nothing is recorded. The caller should hold a shared lock.
func (r *Repository) SnapshotTree(ctx context.Context, src NodeSource, opts SnapshotOptions) (*Snapshot, error) {
	return r.single(ctx, func(b *Batch) (*Snapshot, error) { return b.SnapshotTree(ctx, src, opts) })
}

// single writes one snapshot through a batch of its own; on failure the
// open packs are not stored.
func (r *Repository) single(ctx context.Context, write func(*Batch) (*Snapshot, error)) (*Snapshot, error) {
	b, err := r.NewBatch(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := write(b)
	if err != nil {
		b.Abort()
		return nil, err
	}
	return snap, b.Close()
}

// begin starts one snapshot of the batch: its time, its source's history
// and its scope.
func (b *Batch) begin(ctx context.Context, opts SnapshotOptions) (*snapStart, error) {
	if opts.Name == "" {
		return nil, errors.New("snapshot: a name is required")
	}
	if err := b.s.err(); err != nil {
		return nil, err
	}
	st := &snapStart{began: time.Now(), time: opts.Time}
	if st.time.IsZero() {
		st.time = st.began
	}
	var err error
	if st.h, err = b.r.sourceHistory(ctx, opts.Name, opts.Host); err != nil {
		return nil, err
	}
	if st.sc, err = b.s.openScope(opts.Name, opts.Host, opts.Progress); err != nil {
		return nil, err
	}
	b.s.writing.Add(1)
	return st, nil
}

// written tells the batch that a snapshot's streams are complete (or
// failed); it must be called once per successful begin.
func (b *Batch) written(st *snapStart) {
	if !st.written {
		st.written = true
		b.s.writing.Add(-1)
	}
}

// snapStart is what begin prepared for one snapshot.
type snapStart struct {
	began, time time.Time
	h           history
	sc          *snapScope
	written     bool
}

// save waits until the snapshot's blobs are indexed and records it.
func (b *Batch) save(ctx context.Context, st *snapStart, snap *Snapshot, opts SnapshotOptions) error {
	b.written(st)
	if err := b.s.sync(b.s.claimMark()); err != nil {
		return err
	}
	snap.Time, snap.Host, snap.Username, snap.Name, snap.Tags = st.time.UTC(), opts.Host, opts.Username, opts.Name, opts.Tags
	snap.Command, snap.Program = opts.Command, opts.Program
	snap.AddedBytes, snap.AddedBlobs, snap.AddedDeltas = st.sc.bytes.Load(), st.sc.blobs.Load(), st.sc.deltas.Load()
	snap.Duration = time.Since(st.began).Seconds()
	return b.r.saveNew(ctx, snap, st.h, opts)
}

// SnapshotStream stores rd as one stream of the batch; see
// Repository.SnapshotStream.
func (b *Batch) SnapshotStream(ctx context.Context, rd io.Reader, opts SnapshotOptions) (_ *Snapshot, err error) {
	st, err := b.begin(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { b.written(st); b.s.closeScope(st.sc, err == nil) }()
	var parent *crypt.ID
	var prev *prevStream
	if p := st.h.lastUsable; b.r.cfg.Delta.Enabled && !opts.NoDelta && p != nil {
		if prev, err = b.r.previousStream(ctx, p.ID, p.Tree); err != nil {
			return nil, err
		}
		if prev != nil {
			parent = &prev.snapshot
		}
	}
	stats, hash, err := b.s.writeStream(st.sc, rd, prev, opts.AllowEmpty)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Kind: KindStream, Tree: stats.root, Size: stats.size, StreamHash: hash,
		Chunks: stats.chunks, DeltaBase: parent}
	if err := b.save(ctx, st, snap, opts); err != nil {
		return nil, err
	}
	return snap, nil
}

// SnapshotTree stores a directory tree as a snapshot of the batch; see
// Repository.SnapshotTree.
func (b *Batch) SnapshotTree(ctx context.Context, src NodeSource, opts SnapshotOptions) (_ *Snapshot, err error) {
	st, err := b.begin(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { b.written(st); b.s.closeScope(st.sc, err == nil) }()
	t := &treeWrite{s: b.s, sc: st.sc, src: src}
	if p := st.h.lastUsable; p != nil && p.Kind == KindTree && p.Catalog != nil {
		if err := t.loadPrevious(ctx, p, b.r.cfg.Delta.Enabled && !opts.NoDelta); err != nil {
			return nil, err
		}
	}
	defer t.closePrevious()
	if err := t.run(ctx, opts.AllowEmpty); err != nil {
		return nil, err
	}
	snap := &Snapshot{Kind: KindTree, Tree: t.content.root, Size: t.content.size, Chunks: t.content.chunks,
		StreamHash: t.catalog.hash, Catalog: &t.catalogRoot, CatalogSize: t.catalog.size,
		Nodes: t.nodes, UnchangedFiles: t.unchanged, DeltaBase: t.parent}
	if err := b.save(ctx, st, snap, opts); err != nil {
		return nil, err
	}
	return snap, nil
}
