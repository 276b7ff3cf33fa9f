package repo

import (
	"context"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
)

// SnapshotBlobs calls fn for every blob that restoring snap needs: its tree
// blobs, its data blobs and, for a data blob stored as a delta, every base
// of its chain (found in the index, FORMAT.md §5). A blob may be reported
// more than once. A blob missing from the index is reported with missing
// set, and the walk goes on where it can: a missing tree blob hides its
// subtree, so fn sees it but not its children. LoadIndex must have run.
func (r *Repository) SnapshotBlobs(ctx context.Context, snap *Snapshot, fn func(t pack.BlobType, id crypt.ID, missing bool) error) error {
	for _, root := range snap.roots() {
		if err := r.walkBlobs(ctx, root, -1, fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repository) walkBlobs(ctx context.Context, id crypt.ID, level int, fn func(pack.BlobType, crypt.ID, bool) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !r.idx.Has(id) {
		return fn(pack.TreeBlob, id, true)
	}
	if err := fn(pack.TreeBlob, id, false); err != nil {
		return err
	}
	lvl, entries, err := r.loadTree(ctx, id, level)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if lvl > 0 {
			err = r.walkBlobs(ctx, e.ID, lvl-1, fn)
		} else {
			err = r.chainBlobs(e.ID, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// chainBlobs reports a data blob and the bases of its delta chain.
func (r *Repository) chainBlobs(id crypt.ID, fn func(pack.BlobType, crypt.ID, bool) error) error {
	for range maxChainDecode + 1 {
		loc, ok := r.idx.Lookup(id)
		if err := fn(pack.DataBlob, id, !ok); err != nil || !ok {
			return err
		}
		if loc.Entry.Enc != pack.DeltaZstd {
			return nil
		}
		id = loc.Entry.Base
	}
	return corrupt(nil, "delta chain of blob %s is longer than %d", id.Short(), maxChainDecode)
}
