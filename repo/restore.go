package repo

import (
	"context"
	"fmt"
	"io"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
)

// RestoreStream writes the stream of snap to w. Every blob is verified
// against its ID, and the whole stream against the snapshot's size and hash;
// on any mismatch it returns an error naming the pack and blob (a *BlobError
// matching ErrCorrupt). The caller must treat what it wrote as garbage then.
func (r *Repository) RestoreStream(ctx context.Context, snap *Snapshot, w io.Writer, p *Progress) error {
	if snap.Kind == KindTree {
		return fmt.Errorf("snapshot %s is a directory tree: restore it to a directory (--target): %w", snap.ID.Short(), ErrNotStream)
	}
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pipe := r.newRestorePipe(ctx, cancel)
	defer pipe.wait()
	defer cancel(nil) // stops the producer and workers before wait

	// Producer: walk the tree in stream order.
	pipe.produce(func() error {
		err := r.walkTree(ctx, snap.Tree, -1, func(e TreeEntry) error {
			return pipe.send(&restoreJob{id: e.ID, size: e.Size, done: make(chan struct{})}, true)
		})
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err)
		}
		return nil
	})

	hasher := r.key.NewIDHasher()
	var n int64
	for {
		j, err := pipe.next()
		if err != nil {
			return err
		}
		if j == nil {
			break
		}
		if j.err != nil {
			cancel(j.err)
			return j.err
		}
		if _, err := w.Write(j.data); err != nil {
			err = fmt.Errorf("write restored stream: %w", err)
			cancel(err)
			return err
		}
		hasher.Write(j.data)
		n += int64(len(j.data))
		p.addBytes(int64(len(j.data)))
		pipe.release(j)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var sum crypt.ID
	copy(sum[:], hasher.Sum(nil))
	if n != snap.Size {
		return corrupt(nil, "snapshot %s: restored %d bytes, the snapshot recorded %d", snap.ID.Short(), n, snap.Size)
	}
	if sum != snap.StreamHash {
		return corrupt(nil, "snapshot %s: the restored stream does not match the recorded stream hash", snap.ID.Short())
	}
	return nil
}

// walkTree calls fn for every data blob under the tree node id, in stream
// order. level is the level the node must have, or -1 for the root.
func (r *Repository) walkTree(ctx context.Context, id crypt.ID, level int, fn func(TreeEntry) error) error {
	lvl, entries, err := r.loadTree(ctx, id, level)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if lvl == 0 {
			err = fn(e)
		} else {
			err = r.walkTree(ctx, e.ID, lvl-1, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loadTree reads and decodes one tree node, which must have the given level
// (-1: any).
func (r *Repository) loadTree(ctx context.Context, id crypt.ID, level int) (int, []TreeEntry, error) {
	plain, err := r.LoadBlob(ctx, pack.TreeBlob, id, nil)
	if err != nil {
		return 0, nil, err
	}
	lvl, entries, err := DecodeTree(plain)
	if err != nil {
		return 0, nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	if level >= 0 && lvl != level {
		return 0, nil, corrupt(nil, "tree %s has level %d, want %d", id.Short(), lvl, level)
	}
	return lvl, entries, nil
}
