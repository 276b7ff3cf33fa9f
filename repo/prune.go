package repo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

// DefaultMaxUnused is the share of a pack's blob bytes that may be unused
// before prune repacks it.
const DefaultMaxUnused = 0.05

// pruneIndexBlobs bounds the blobs listed by one index file that prune
// writes, so its memory does not grow with the repository.
const pruneIndexBlobs = 1 << 18

// PruneOptions tune PlanPrune.
type PruneOptions struct {
	// MaxUnused is the share (0 to 1) of a pack's blob bytes that may belong
	// to unused blobs; a partly used pack above it is repacked. Zero repacks
	// every pack that holds an unused blob.
	MaxUnused float64
	// MaxRepackSize bounds the total size of the packs repacked by one
	// prune; zero means no bound. Packs with the largest unused share go first.
	MaxRepackSize int64
	// Forgotten lists snapshots to treat as removed: for a dry run of forget
	// and prune, or to plan a prune before forget removes them, so that a
	// prune that refuses leaves the snapshots too.
	Forgotten []crypt.ID
}

// PackInfo describes one pack that a prune deletes or repacks.
type PackInfo struct {
	ID        crypt.ID `json:"id"`
	Size      int64    `json:"size"`
	Blobs     int      `json:"blobs"`
	UsedBlobs int      `json:"used_blobs"`
	UsedBytes int64    `json:"used_bytes"`
	// Missing marks an indexed pack that is not stored; it holds no used
	// blob and is only dropped from the index.
	Missing bool `json:"missing,omitempty"`
}

// PrunePlan is what a prune will do (PlanPrune), and then does (Execute).
// Every field is known after planning; a dry run prints the plan.
type PrunePlan struct {
	Snapshots int `json:"snapshots"`  // snapshots whose blobs are kept
	UsedBlobs int `json:"used_blobs"` // blobs they need, delta bases included
	Packs     int `json:"packs"`      // packs in the index
	KeepPacks int `json:"keep_packs"` // packs kept as they are
	// Delete lists the indexed packs that hold no used blob.
	Delete []PackInfo `json:"delete"`
	// Repack lists the partly used packs whose used blobs are copied into
	// new packs before they are deleted.
	Repack []PackInfo `json:"repack"`
	// Orphans lists stored packs that no index lists: left by interrupted
	// snapshots and prunes.
	Orphans []PackInfo `json:"orphans"`
	// WriteIndex says whether a new index replaces the current one (when
	// indexed packs go away); IndexFiles counts the index files deleted.
	WriteIndex  bool  `json:"write_index"`
	IndexFiles  int   `json:"index_files"`
	DeleteBytes int64 `json:"delete_bytes"` // size of the deleted and orphan packs
	RepackBytes int64 `json:"repack_bytes"` // size of the repacked packs
	CopyBytes   int64 `json:"copy_bytes"`   // sealed bytes copied into new packs
	Reclaim     int64 `json:"reclaim_bytes"`
	// Warnings name damage that prune works around: blobs missing for
	// snapshots marked broken.
	Warnings []string `json:"warnings,omitempty"`

	r         *Repository
	exclusive bool   // planned under an exclusive lock
	epoch     uint64 // of the lock planned under
	used      map[crypt.ID]blobState
	keep      map[crypt.ID]bool // packs kept as they are
	repack    []repackPack
	files     pruneIndexFiles
	done      bool
}

// pruneIndexFiles names the index files a prune found.
type pruneIndexFiles struct {
	all    []string // every index file listed
	loaded []string // those not superseded: the repository index
}

// blobState tracks one used blob while a prune is planned.
type blobState uint8

// blobKept marks a used blob that has a copy in a kept pack or is copied.
const blobKept blobState = 1

// repackPack is a pack to repack and the blobs to copy out of it.
type repackPack struct {
	pack index.Pack
	copy []pack.Entry // by offset
}

// Empty reports whether the plan changes nothing.
func (p *PrunePlan) Empty() bool {
	return len(p.Delete) == 0 && len(p.Repack) == 0 && len(p.Orphans) == 0 && p.IndexFiles == 0
}

// packStat is what planning learns about one indexed pack.
type packStat struct {
	pack        index.Pack
	blobs, used int
	usedBytes   int64
	unusedBytes int64
}

// PlanPrune finds the blobs that the snapshots need and plans how to reclaim
// the rest. It reads the index again, every snapshot and their trees, and
// lists the packs; it writes nothing. It refuses, with an error matching
// ErrCorrupt, when a blob a snapshot needs is not in the index or its pack is
// missing or has the wrong size (blobs missing for snapshots marked broken
// are only warned about).
//
// The caller must hold a lock. Only a plan made under an exclusive lock can
// be executed, and only while that lock is still held (FORMAT.md §11); under
// a shared lock, as for a dry run, snapshots may be running and the plan is
// an estimate.
func (r *Repository) PlanPrune(ctx context.Context, opts PruneOptions) (*PrunePlan, error) {
	locked, exclusive, epoch := r.lockState()
	if !locked {
		return nil, errors.New("prune needs a lock")
	}
	if opts.MaxUnused < 0 || opts.MaxUnused > 1 {
		return nil, fmt.Errorf("prune: max unused %g is not between 0 and 1", opts.MaxUnused)
	}
	// The index is read afresh under the lock; it is what the plan rests on.
	set, err := r.readIndexes(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	idx := set.idx
	files := pruneIndexFiles{all: set.names}
	for _, name := range set.names {
		if set.superseded[name] == "" {
			files.loaded = append(files.loaded, name)
		}
	}
	r.idxOnce.Lock()
	r.idx, r.idxDone = idx, true
	r.idxOnce.Unlock()

	p := &PrunePlan{Delete: []PackInfo{}, Repack: []PackInfo{}, Orphans: []PackInfo{},
		r: r, exclusive: exclusive, epoch: epoch, files: files,
		used: map[crypt.ID]blobState{}, keep: map[crypt.ID]bool{}}
	stored := map[crypt.ID]int64{}
	err = r.be.List(ctx, store.PackFile, func(fi store.FileInfo) error {
		if id, err := crypt.ParseID(fi.Name); err == nil {
			stored[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	if err := p.findUsed(ctx, opts.Forgotten); err != nil {
		return nil, err
	}
	stats := p.packStats(idx)
	if err := p.decide(idx, stats, stored, opts); err != nil {
		return nil, err
	}
	orphans := 0
	for id, size := range stored {
		if _, ok := stats[id]; ok {
			continue
		}
		// While a snapshot misses blobs, an unindexed pack may hold them
		// (a lost index file): keep it for `bk repair index`.
		if orphans++; len(p.Warnings) == 0 {
			p.Orphans = append(p.Orphans, PackInfo{ID: id, Size: size})
			p.DeleteBytes += size
		}
	}
	if orphans > 0 && len(p.Warnings) > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d packs that no index lists are kept while snapshots miss blobs; `bk repair index` may recover them", orphans))
	}
	sortPacks(p.Orphans)
	p.WriteIndex = len(p.Delete) > 0 || len(p.Repack) > 0
	if p.WriteIndex {
		p.IndexFiles = len(files.all)
	} else {
		p.IndexFiles = len(files.all) - len(files.loaded) // superseded leftovers
	}
	p.Reclaim = p.DeleteBytes + p.RepackBytes - p.CopyBytes
	return p, nil
}

// findUsed collects the blobs every snapshot needs, delta bases included,
// and then the bases of every indexed copy of them: a blob stored twice, once
// whole and once as a delta, keeps whichever copy survives restorable.
func (p *PrunePlan) findUsed(ctx context.Context, forgotten []crypt.ID) error {
	r := p.r
	snaps, err := r.Snapshots(ctx, Filter{})
	if err != nil {
		return err
	}
	skip := map[crypt.ID]bool{}
	for _, id := range forgotten {
		skip[id] = true
	}
	var missing []string // the first few, for the message
	nMissing := 0
	for _, s := range snaps {
		if skip[s.ID] {
			continue
		}
		p.Snapshots++
		broken, lost := s.Status == StatusBroken, 0
		err := r.SnapshotBlobs(ctx, s, func(t pack.BlobType, id crypt.ID, gone bool) error {
			switch {
			case !gone:
				p.used[id] = 0
			case broken:
				lost++
			default:
				if nMissing++; len(missing) < 4 {
					missing = append(missing, fmt.Sprintf("snapshot %s needs %s blob %s", s.ID.Short(), t, id.Short()))
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("prune refused, nothing was changed: read snapshot %s: %w", s.ID.Short(), err)
		}
		if lost > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("snapshot %s is marked broken: %d of its blobs are missing; the others are kept", s.ID.Short(), lost))
		}
	}
	if nMissing > 0 {
		return corrupt(nil, "prune refused, nothing was changed: %d blobs that snapshots need are missing from the index (%s); run `bk check`",
			nMissing, strings.Join(missing, "; "))
	}
	for range maxChainDecode + 1 {
		var add []index.Location
		r.idx.Each(func(l index.Location) {
			if l.Entry.Enc != pack.DeltaZstd {
				return
			}
			if _, ok := p.used[l.Entry.ID]; ok {
				if _, ok := p.used[l.Entry.Base]; !ok {
					add = append(add, l)
				}
			}
		})
		if len(add) == 0 {
			p.UsedBlobs = len(p.used)
			return nil
		}
		for _, l := range add {
			if !r.idx.Has(l.Entry.Base) {
				return corrupt(nil, "prune refused, nothing was changed: blob %s in pack %s is a delta of blob %s, which is not in the index; run `bk check`",
					l.Entry.ID.Short(), l.Pack.ID.Short(), l.Entry.Base.Short())
			}
			p.used[l.Entry.Base] = 0
		}
	}
	return corrupt(nil, "prune refused: delta chains longer than %d", maxChainDecode)
}

// packStats counts the used and unused blobs of every indexed pack.
func (p *PrunePlan) packStats(idx *index.Index) map[crypt.ID]*packStat {
	stats := map[crypt.ID]*packStat{}
	for _, pk := range idx.Packs() {
		stats[pk.ID] = &packStat{pack: pk}
	}
	idx.Each(func(l index.Location) {
		ps := stats[l.Pack.ID]
		ps.blobs++
		if _, ok := p.used[l.Entry.ID]; !ok {
			ps.unusedBytes += l.Entry.Length
			return
		}
		ps.used++
		ps.usedBytes += l.Entry.Length
	})
	return stats
}

// decide sorts the indexed packs into kept, deleted and repacked ones, and
// picks the blobs each repacked pack gives to the new packs.
func (p *PrunePlan) decide(idx *index.Index, stats map[crypt.ID]*packStat, stored map[crypt.ID]int64, opts PruneOptions) error {
	info := func(ps *packStat) PackInfo {
		return PackInfo{ID: ps.pack.ID, Size: ps.pack.Size, Blobs: ps.blobs, UsedBlobs: ps.used, UsedBytes: ps.usedBytes}
	}
	var candidates []*packStat
	for id, ps := range stats {
		size, ok := stored[id]
		switch {
		case ps.used == 0:
			pi := info(ps)
			pi.Missing = !ok
			if ok {
				p.DeleteBytes += size
			}
			p.Delete = append(p.Delete, pi)
		case !ok:
			return corrupt(nil, "prune refused, nothing was changed: pack %s holds %d used blobs and is missing; run `bk check`", id.Short(), ps.used)
		case size != ps.pack.Size:
			return corrupt(nil, "prune refused, nothing was changed: pack %s is %d bytes, the index says %d; run `bk check`", id.Short(), size, ps.pack.Size)
		case ps.unusedBytes > 0 && float64(ps.unusedBytes) > opts.MaxUnused*float64(ps.usedBytes+ps.unusedBytes):
			candidates = append(candidates, ps)
		default:
			p.keep[id] = true
		}
	}
	p.Packs = len(stats)
	sortPacks(p.Delete)

	// The largest unused share first, within the size bound.
	share := func(ps *packStat) float64 { return float64(ps.unusedBytes) / float64(ps.usedBytes+ps.unusedBytes) }
	slices.SortFunc(candidates, func(a, b *packStat) int {
		if c := cmp.Compare(share(b), share(a)); c != 0 {
			return c
		}
		return bytes.Compare(a.pack.ID[:], b.pack.ID[:])
	})
	repack := map[crypt.ID]*repackPack{}
	for _, ps := range candidates {
		if opts.MaxRepackSize > 0 && p.RepackBytes+ps.pack.Size > opts.MaxRepackSize {
			p.keep[ps.pack.ID] = true
			continue
		}
		p.RepackBytes += ps.pack.Size
		p.Repack = append(p.Repack, info(ps))
		repack[ps.pack.ID] = &repackPack{pack: ps.pack}
	}
	p.KeepPacks = len(p.keep)
	sortPacks(p.Repack)

	// A used blob that has a copy in a kept pack is not copied; any other is
	// copied once, from the first repacked pack that holds it.
	idx.Each(func(l index.Location) {
		st, used := p.used[l.Entry.ID]
		if !used {
			return
		}
		if p.keep[l.Pack.ID] {
			p.used[l.Entry.ID] = st | blobKept
		} else if rp := repack[l.Pack.ID]; rp != nil {
			rp.copy = append(rp.copy, l.Entry)
		}
	})
	for _, pi := range p.Repack {
		rp := repack[pi.ID]
		slices.SortFunc(rp.copy, func(a, b pack.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
		out := rp.copy[:0]
		for _, e := range rp.copy {
			if st := p.used[e.ID]; st&blobKept == 0 {
				p.used[e.ID] = st | blobKept
				out = append(out, e)
				p.CopyBytes += e.Length
			}
		}
		rp.copy = out
		p.repack = append(p.repack, *rp)
	}
	for id, st := range p.used {
		if st&blobKept == 0 {
			return fmt.Errorf("prune: internal error: used blob %s would be lost", id.Short())
		}
	}
	return nil
}

func sortPacks(ps []PackInfo) {
	slices.SortFunc(ps, func(a, b PackInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) })
}

// Execute carries out the plan, in an order that keeps every snapshot
// restorable if it stops at any point (FORMAT.md §8, §10):
//
//  1. copy the used blobs of the packs to repack into new packs, as stored
//     (deltas stay deltas of the same base);
//  2. write the new index: the entries of the kept packs and the new packs,
//     the last file superseding every index file that was read;
//  3. delete the old index files;
//  4. delete the unused, repacked and orphan packs.
//
// A prune that stopped is finished by running it again. Execute runs once;
// the caller must still hold the exclusive lock it planned under.
func (p *PrunePlan) Execute(ctx context.Context) error {
	r := p.r
	if p.done {
		return errors.New("prune: the plan was executed already")
	}
	if _, exclusive, epoch := r.lockState(); !p.exclusive || !exclusive || epoch != p.epoch {
		return errors.New("prune: a plan runs only under the exclusive lock it was made under")
	}
	p.done = true
	defer r.invalidateIndex()

	newPacks, err := p.copyBlobs(ctx)
	if err != nil {
		return err
	}
	if p.WriteIndex {
		if err := p.writeIndex(ctx, newPacks); err != nil {
			return err
		}
	}
	var oldIndex []string
	if p.WriteIndex {
		oldIndex = p.files.all
	} else {
		for _, name := range p.files.all {
			if !slices.Contains(p.files.loaded, name) {
				oldIndex = append(oldIndex, name)
			}
		}
	}
	var h []store.Handle
	for _, name := range oldIndex {
		h = append(h, store.Handle{Type: store.IndexFile, Name: name})
	}
	if err := r.deleteAll(ctx, h); err != nil {
		return err
	}
	h = h[:0]
	for _, list := range [][]PackInfo{p.Delete, p.Repack, p.Orphans} {
		for _, pi := range list {
			if !pi.Missing {
				h = append(h, store.Handle{Type: store.PackFile, Name: pi.ID.String()})
			}
		}
	}
	return r.deleteAll(ctx, h)
}

// copyBlobs copies the used blobs of the packs to repack into new packs and
// returns them. A blob is decrypted with its old pack's subkey and sealed
// again into the new pack; its stored bytes, type, encoding and base stay as
// they are. Whole blobs are verified against their IDs on the way; deltas
// are authenticated by GCM.
func (p *PrunePlan) copyBlobs(ctx context.Context) ([]index.PackBlobs, error) {
	r := p.r
	var (
		writers  [3]*pack.Writer
		out      []index.PackBlobs
		scratch  []byte
		plainBuf []byte
	)
	flush := func(t pack.BlobType) error {
		pw := writers[t]
		writers[t] = nil
		if pw == nil || pw.Count() == 0 {
			return nil
		}
		data, entries, err := pw.Finalize()
		if err != nil {
			return err
		}
		id := crypt.Hash(data)
		if err := r.be.Put(ctx, store.Handle{Type: store.PackFile, Name: id.String()}, bytes.NewReader(data), int64(len(data))); err != nil {
			return fmt.Errorf("prune: save pack %s: %w", id.Short(), err)
		}
		out = append(out, index.PackBlobs{ID: id, Salt: pw.Salt(), Size: int64(len(data)), Blobs: entries})
		return nil
	}
	for _, rp := range p.repack {
		if len(rp.copy) == 0 {
			continue
		}
		lo := rp.copy[0].Offset
		last := rp.copy[len(rp.copy)-1]
		buf, err := store.ReadAt(ctx, r.be, store.Handle{Type: store.PackFile, Name: rp.pack.ID.String()}, lo, last.Offset+last.Length-lo)
		if err != nil {
			return nil, fmt.Errorf("prune: read pack %s: %w", rp.pack.ID.Short(), err)
		}
		sub, err := r.key.Subkey(rp.pack.Salt)
		if err != nil {
			return nil, err
		}
		for _, e := range rp.copy {
			fail := func(err error) error { return &BlobError{Pack: rp.pack.ID, Blob: e.ID, Err: err} }
			stored, err := pack.OpenBlob(sub, e, scratch[:0], buf[e.Offset-lo:e.Offset-lo+e.Length])
			if err != nil {
				return nil, fail(corrupt(err, "decrypt"))
			}
			scratch = stored
			var plain []byte
			switch e.Enc {
			case pack.Raw:
				plain = stored
			case pack.Zstd:
				if plainBuf, err = r.blobDec.DecodeAll(stored, plainBuf[:0]); err != nil {
					return nil, fail(corrupt(err, "decompress"))
				}
				plain = plainBuf
			}
			if plain != nil && (int64(len(plain)) != e.RawLength || r.key.BlobID(plain) != e.ID) {
				return nil, fail(corrupt(nil, "content does not match its ID"))
			}
			if writers[e.Type] == nil {
				if writers[e.Type], err = pack.NewWriter(r.key, int(r.cfg.PackSize)); err != nil {
					return nil, err
				}
			}
			if _, err := writers[e.Type].Add(e.Type, e.Enc, e.ID, e.Base, stored, int(e.RawLength)); err != nil {
				return nil, err
			}
			if int64(writers[e.Type].Size()) >= r.cfg.PackSize {
				if err := flush(e.Type); err != nil {
					return nil, err
				}
			}
		}
	}
	for t := range writers {
		if err := flush(pack.BlobType(t)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeIndex writes the index of the kept packs and the new packs. Every
// file but the last supersedes nothing, so until the last one is stored the
// old index files stay in force; the last supersedes every index file read.
func (p *PrunePlan) writeIndex(ctx context.Context, newPacks []index.PackBlobs) error {
	r := p.r
	var (
		pending index.File
		n       int
		emitted = map[crypt.ID]bool{}
	)
	save := func() error {
		if _, err := r.saveIndex(ctx, &pending); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		pending, n = index.File{}, 0
		return nil
	}
	add := func(pb index.PackBlobs) error {
		pending.Packs = append(pending.Packs, pb)
		if n += len(pb.Blobs); n >= pruneIndexBlobs {
			return save()
		}
		return nil
	}
	for _, name := range p.files.loaded {
		f, err := r.LoadIndexFile(ctx, name)
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		for _, pb := range f.Packs {
			if p.keep[pb.ID] && !emitted[pb.ID] {
				emitted[pb.ID] = true
				if err := add(pb); err != nil {
					return err
				}
			}
		}
	}
	if len(emitted) != len(p.keep) {
		return fmt.Errorf("prune: the index files changed since the plan: %d of %d kept packs found", len(emitted), len(p.keep))
	}
	for _, pb := range newPacks {
		if err := add(pb); err != nil {
			return err
		}
	}
	for _, name := range p.files.all {
		id, err := crypt.ParseID(name)
		if err != nil {
			return fmt.Errorf("prune: index file name %q: %w", name, err)
		}
		pending.Supersedes = append(pending.Supersedes, id)
	}
	return save()
}

// deleteAll deletes files, a few at a time; one already gone is no error.
func (r *Repository) deleteAll(ctx context.Context, hs []store.Handle) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, h := range hs {
		g.Go(func() error {
			err := r.be.Delete(gctx, h)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("prune: delete %s: %w", h, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// invalidateIndex makes the next LoadIndex read the index again.
func (r *Repository) invalidateIndex() {
	r.idxOnce.Lock()
	defer r.idxOnce.Unlock()
	r.idxDone = false
}
