package repo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

// RepairReport says what RepairIndex did.
type RepairReport struct {
	// Packs and Blobs count what the new index lists.
	Packs int `json:"packs"`
	Blobs int `json:"blobs"`
	// Added lists the packs that no old index listed (leftovers of
	// interrupted writes, or packs of a lost index file).
	Added []crypt.ID `json:"added"`
	// Dropped lists the packs an old index listed that no longer exist.
	Dropped []crypt.ID `json:"dropped"`
	// FromOldIndex lists the packs whose header is unreadable but which an
	// old index file listed: their entries were kept from it.
	FromOldIndex []crypt.ID `json:"from_old_index"`
	// Unreadable lists the packs left out: the header is unreadable and no
	// old index file lists them.
	Unreadable []crypt.ID `json:"unreadable"`
	// Written and Removed name the new and the old index files.
	Written []crypt.ID `json:"written"`
	Removed []string   `json:"removed"`
	// Warnings describe what went wrong on the way without stopping it:
	// old index files that did not load or could not be deleted, flaky reads.
	Warnings []string `json:"warnings"`
}

// RepairIndex rebuilds the index from the pack headers, for when index
// files are lost or damaged. It lists the packs, reads every header (not the
// data), writes new index files covering every readable pack, the last of
// which supersedes every old index file, and only then deletes the old
// files, so a crash at any point leaves a usable index (FORMAT.md §8). A pack
// whose header is unreadable keeps the entries an old index file gives it.
// The caller must hold an exclusive lock.
func (r *Repository) RepairIndex(ctx context.Context) (*RepairReport, error) {
	rep := &RepairReport{Added: []crypt.ID{}, Dropped: []crypt.ID{}, FromOldIndex: []crypt.ID{},
		Unreadable: []crypt.ID{}, Written: []crypt.ID{}, Removed: []string{}, Warnings: []string{}}
	var mu sync.Mutex
	warn := func(format string, args ...any) {
		mu.Lock()
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	files := map[crypt.ID]int64{}
	err := r.be.List(ctx, store.PackFile, func(fi store.FileInfo) error {
		if id, err := crypt.ParseID(fi.Name); err == nil {
			files[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	old, err := r.readIndexes(ctx, func(name string, err error) {
		warn("index %s does not load and is replaced: %s", name[:min(8, len(name))], brief(err))
	}, true)
	if err != nil {
		return nil, err
	}

	// Read every header.
	packs := map[crypt.ID]*index.PackBlobs{}
	failed := map[crypt.ID]error{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for id, size := range files {
		g.Go(func() error {
			salt, entries, err := r.readPackHeader(gctx, id, size, nil, nil)
			if err != nil && gctx.Err() == nil {
				var err2 error
				if salt, entries, err2 = r.readPackHeader(gctx, id, size, nil, nil); err2 == nil {
					warn("pack %s: a read failed (%s) and a second read was clean", id.Short(), brief(err))
				}
				err = err2
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[id] = err
				return nil
			}
			packs[id] = &index.PackBlobs{ID: id, Salt: salt, Size: size, Blobs: entries}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// A pack whose header is unreadable keeps what an old index says of it.
	keep := map[crypt.ID]bool{}
	for id := range failed {
		if ps, ok := old.packs[id]; ok && ps.size == files[id] {
			keep[id] = true
			packs[id] = &index.PackBlobs{ID: id, Salt: ps.salt, Size: ps.size}
		}
	}
	if len(keep) > 0 {
		old.idx.Each(func(l index.Location) {
			if keep[l.Pack.ID] {
				p := packs[l.Pack.ID]
				p.Blobs = append(p.Blobs, l.Entry)
			}
		})
	}
	for id, err := range failed {
		if keep[id] {
			rep.FromOldIndex = append(rep.FromOldIndex, id)
			warn("pack %s: header unreadable (%s); kept the entries of the old index", id.Short(), brief(err))
		} else {
			rep.Unreadable = append(rep.Unreadable, id)
			warn("pack %s: header unreadable (%s) and no old index lists it; left out", id.Short(), brief(err))
		}
	}
	for id := range packs {
		if _, ok := old.packs[id]; !ok {
			rep.Added = append(rep.Added, id)
		}
	}
	for id := range old.packs {
		if _, ok := files[id]; !ok {
			rep.Dropped = append(rep.Dropped, id)
		}
	}
	for _, list := range [][]crypt.ID{rep.Added, rep.Dropped, rep.FromOldIndex, rep.Unreadable} {
		slices.SortFunc(list, func(a, b crypt.ID) int { return bytes.Compare(a[:], b[:]) })
	}

	// Write the new index files, the superseding one last.
	ids := make([]crypt.ID, 0, len(packs))
	for id, p := range packs {
		slices.SortFunc(p.Blobs, func(a, b pack.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
		ids = append(ids, id)
		rep.Blobs += len(p.Blobs)
	}
	slices.SortFunc(ids, func(a, b crypt.ID) int { return bytes.Compare(a[:], b[:]) })
	rep.Packs = len(ids)
	var supersedes []crypt.ID
	for _, name := range old.names {
		if id, err := crypt.ParseID(name); err == nil {
			supersedes = append(supersedes, id)
		}
	}
	idx := index.New()
	var f index.File
	n := 0
	for i, id := range ids {
		p := packs[id]
		f.Packs = append(f.Packs, *p)
		n += len(p.Blobs)
		if err := idx.AddPack(index.Pack{ID: p.ID, Salt: p.Salt, Size: p.Size}, p.Blobs); err != nil {
			return nil, err
		}
		last := i == len(ids)-1
		if n < indexFlushBlobs && !last {
			continue
		}
		if last {
			f.Supersedes = supersedes
		}
		name, err := r.saveIndex(ctx, &f)
		if err != nil {
			return nil, fmt.Errorf("write the new index: %w", err)
		}
		rep.Written = append(rep.Written, name)
		f, n = index.File{}, 0
	}
	if len(ids) == 0 && len(supersedes) > 0 {
		name, err := r.saveIndex(ctx, &index.File{Supersedes: supersedes})
		if err != nil {
			return nil, fmt.Errorf("write the new index: %w", err)
		}
		rep.Written = append(rep.Written, name)
	}
	idx.Compact()
	r.idxOnce.Lock()
	r.idx, r.idxDone = idx, true
	r.idxOnce.Unlock()

	// Only now delete the old files.
	for _, id := range supersedes {
		if slices.Contains(rep.Written, id) {
			continue
		}
		err := r.be.Delete(ctx, store.Handle{Type: store.IndexFile, Name: id.String()})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			warn("could not delete the old index %s (the new index supersedes it): %v", id.Short(), err)
			continue
		}
		rep.Removed = append(rep.Removed, id.String())
	}
	return rep, nil
}

// RepairSnapshotsReport says what RepairSnapshots did, or would do.
type RepairSnapshotsReport struct {
	DryRun bool `json:"dry_run"`
	// Marked lists the snapshots marked broken (or that would be).
	Marked []MarkedSnapshot `json:"marked"`
	// Problems are the problems that lose data, which made them broken.
	Problems []Problem `json:"problems"`
}

// MarkedSnapshot is one snapshot marked broken.
type MarkedSnapshot struct {
	ID    crypt.ID  `json:"id"`              // the snapshot file replaced
	NewID crypt.ID  `json:"new_id,omitzero"` // the snapshot file that replaces it (not in a dry run)
	Name  string    `json:"name"`
	Host  string    `json:"host"`
	Time  time.Time `json:"time"`
}

// RepairSnapshots marks broken every snapshot whose data is gone: a blob it
// needs is not indexed, its pack is missing or truncated, or a tree does
// not load (what the structural check finds; it reads no data). Each is
// rewritten with Status StatusBroken and otherwise the same content, and
// then its old file is deleted. forget removes broken snapshots, and check
// reports them as warnings only. With dryRun nothing is written.
//
// It refuses while blobs are missing from the index and index files do not
// load or packs are not indexed, since the blobs may be in those packs: run
// RepairIndex first. The caller must hold an exclusive lock.
func (r *Repository) RepairSnapshots(ctx context.Context, dryRun bool) (*RepairSnapshotsReport, error) {
	c, err := r.check(ctx, CheckOptions{}, false)
	if err != nil {
		return nil, err
	}
	rep := &RepairSnapshotsReport{DryRun: dryRun, Marked: []MarkedSnapshot{}, Problems: []Problem{}}
	missing, unindexed := false, 0
	hurt := map[crypt.ID]bool{}
	for _, p := range c.rep.Problems {
		switch {
		case p.Kind == ProblemIndexFile:
			unindexed++
		case p.Lost:
			missing = missing || p.Kind == ProblemMissingBlob
			rep.Problems = append(rep.Problems, p)
			for _, id := range p.Snapshots {
				hurt[id] = true
			}
		}
	}
	for _, w := range c.rep.Warnings {
		if w.Kind == WarnUnreferencedPack {
			unindexed++
		}
	}
	if missing && unindexed > 0 {
		return nil, fmt.Errorf("blobs are missing from the index, but %d packs or index files are not indexed and may hold them: run `bk repair index` first", unindexed)
	}
	for _, s := range c.snaps {
		if !hurt[s.ID] || s.Status == StatusBroken {
			continue
		}
		m := MarkedSnapshot{ID: s.ID, Name: s.Name, Host: s.Host, Time: s.Time}
		if !dryRun {
			ns := *s
			ns.Status = StatusBroken
			if err := r.SaveSnapshot(ctx, &ns); err != nil {
				return rep, fmt.Errorf("mark snapshot %s broken: %w", s.ID.Short(), err)
			}
			m.NewID = ns.ID
			if err := r.be.Delete(ctx, store.Handle{Type: store.SnapshotFile, Name: s.ID.String()}); err != nil {
				return rep, fmt.Errorf("snapshot %s is marked broken as %s, but deleting the old file failed: %w", s.ID.Short(), ns.ID.Short(), err)
			}
		}
		rep.Marked = append(rep.Marked, m)
	}
	return rep, nil
}
