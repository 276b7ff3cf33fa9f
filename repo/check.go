package repo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

// CheckOptions select what Check verifies.
type CheckOptions struct {
	// ReadData downloads every selected pack and verifies every blob in it.
	ReadData bool
	// Subset reads the data of a slice of the packs, and implies ReadData:
	// "N/M" selects the packs whose first ID byte modulo M is N-1, so the
	// runs N = 1..M together read every pack once; "P%" a random sample of
	// about P percent of the packs. Empty means every pack.
	Subset string
	// Seed seeds the sample of a "P%" subset; zero draws one from the clock.
	// CheckReport.Seed says which seed was used, so a run can be repeated.
	Seed uint64
	// Snapshot limits the check to what one snapshot needs: an ID, a unique
	// ID prefix or "latest". Empty means every snapshot.
	Snapshot string
	// Progress, if set, counts the bytes read from packs.
	Progress *Progress

	// onDecode, if set, is called for every blob that --read-data decodes
	// (tests count the decodes through it). It may be called concurrently.
	onDecode func(id crypt.ID)
}

// ProblemKind says what a Problem is about. The values appear in
// `bk check --json`; scripts may rely on them.
type ProblemKind string

// Kinds of problems (errors) and warnings.
const (
	ProblemKey          ProblemKind = "key"           // a key file does not parse
	ProblemSnapshotFile ProblemKind = "snapshot-file" // a snapshot file does not load
	ProblemIndexFile    ProblemKind = "index-file"    // an index file does not load, or index files disagree
	ProblemMissingPack  ProblemKind = "missing-pack"  // the index lists a pack that does not exist
	ProblemPackSize     ProblemKind = "pack-size"     // a pack's size differs from the index
	ProblemPackHeader   ProblemKind = "pack-header"   // a pack header is unreadable or disagrees with the index
	ProblemPackRead     ProblemKind = "pack-read"     // a pack could not be read
	ProblemPackHash     ProblemKind = "pack-hash"     // a pack's content does not match its name
	ProblemMissingBlob  ProblemKind = "missing-blob"  // a blob a snapshot needs is not in the index
	ProblemTree         ProblemKind = "tree"          // a tree blob does not load or decode
	ProblemBlob         ProblemKind = "blob"          // a blob fails to decrypt, decode or verify

	WarnUnreferencedPack ProblemKind = "unreferenced-pack" // a pack no index lists
	WarnSupersededIndex  ProblemKind = "superseded-index"  // an index file another one replaces
	WarnFlakyRead        ProblemKind = "flaky-read"        // a read failed once and then succeeded
	WarnBrokenSnapshot   ProblemKind = "broken-snapshot"   // a snapshot marked broken
)

// Problem is one finding of Check: an error, or a warning.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// File names the repository file at fault, as "index/<name>",
	// "snapshots/<name>" or "keys/<name>", when it is not a pack.
	File string   `json:"file,omitempty"`
	Pack crypt.ID `json:"pack,omitzero"`
	Blob crypt.ID `json:"blob,omitzero"`
	Type string   `json:"blob_type,omitempty"` // "data" or "tree", with Blob
	What string   `json:"what"`
	// Lost says the data named is gone or corrupt: the snapshots listed
	// cannot be restored.
	Lost bool `json:"lost,omitempty"`
	// Snapshots lists, oldest first, every snapshot that needs the blob or
	// the pack's blobs at fault; for a delta base, every snapshot whose
	// delta chains pass through it.
	Snapshots []crypt.ID `json:"snapshots,omitempty"`
}

// String renders the problem on one line, with short IDs.
func (p Problem) String() string {
	var parts []string
	if p.File != "" {
		kind, name, _ := strings.Cut(p.File, "/")
		parts = append(parts, strings.TrimSuffix(kind, "s")+" "+name[:min(8, len(name))])
	}
	if !p.Pack.IsNull() {
		parts = append(parts, "pack "+p.Pack.Short())
	}
	if !p.Blob.IsNull() {
		parts = append(parts, strings.TrimSpace(p.Type+" blob "+p.Blob.Short()))
	}
	s := p.What
	if len(parts) > 0 {
		s = strings.Join(parts, ", ") + ": " + s
	}
	if len(p.Snapshots) > 0 {
		const show = 12
		ids := make([]string, 0, show)
		for _, id := range p.Snapshots[:min(show, len(p.Snapshots))] {
			ids = append(ids, id.Short())
		}
		s += "; snapshots " + strings.Join(ids, " ")
		if len(p.Snapshots) > show {
			s += fmt.Sprintf(" and %d more", len(p.Snapshots)-show)
		}
	}
	return s
}

// CheckReport is the outcome of Check.
type CheckReport struct {
	Problems []Problem `json:"problems"`
	Warnings []Problem `json:"warnings"`
	// Snapshots, Indexes and Packs count what the structural check covered:
	// snapshots walked, index files loaded and indexed packs.
	Snapshots int `json:"snapshots"`
	Indexes   int `json:"indexes"`
	Packs     int `json:"packs"`
	// PacksRead, BlobsChecked and BytesRead count the data read: packs
	// downloaded whole, blobs verified in them, and every byte read from
	// packs (headers and second reads included).
	PacksRead    int64 `json:"packs_read"`
	BlobsChecked int64 `json:"blobs_checked"`
	BytesRead    int64 `json:"bytes_read"`
	// Subset and Seed describe the slice of packs read, if any.
	Subset string `json:"subset,omitempty"`
	Seed   uint64 `json:"seed,omitempty"`
}

// OK reports whether the check found no errors (warnings are allowed).
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// Check verifies the repository and reports every problem it finds; it
// returns an error only when it cannot go on (the store fails to list, the
// context ends, opts are invalid). The caller should hold a shared lock.
//
// The structural check, always done, parses every key file, loads every
// snapshot and index file, checks that every indexed pack exists with the
// recorded size, that every blob a snapshot needs (delta bases included) is
// indexed and its trees decode, and that every pack header agrees with the
// index. ReadData or Subset then download packs whole, one at a time, check
// each against its name and verify every blob in it. A pack that fails is
// read once more: if that read is clean, the failure is reported as a
// flaky read (a warning), else as corruption. Data blobs stored as deltas
// are decoded once each, tree by tree from the whole blob at the bottom of
// their chains (check_chain.go).
//
// Memory grows with the index, not with the data: packs are streamed, and
// the snapshots that each problem hurts are found by walking the snapshots
// once more, only when there are problems. Delta programs wait for their
// chains' walks in at most 512 MiB, the roots decoded from one pack in at
// most 128 MiB, and a walk holds one plaintext per chain depth per worker.
func (r *Repository) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	c, err := r.check(ctx, opts, true)
	if err != nil {
		return nil, err
	}
	return c.rep, nil
}

// ValidSubset reports whether s is a valid CheckOptions.Subset.
func ValidSubset(s string) error {
	_, err := parseSubset(s)
	return err
}

// subset is a parsed CheckOptions.Subset.
type subset struct {
	n, m int     // "N/M"
	pct  float64 // "P%"
}

func parseSubset(s string) (subset, error) {
	if s == "" {
		return subset{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v > 0 && v <= 100) {
			return subset{}, fmt.Errorf("subset %q: want a percentage above 0 and at most 100, like 10%%", s)
		}
		return subset{pct: v}, nil
	}
	ns, ms, ok := strings.Cut(s, "/")
	n, err1 := strconv.Atoi(ns)
	m, err2 := strconv.Atoi(ms)
	if !ok || err1 != nil || err2 != nil || m < 1 || m > 256 || n < 1 || n > m {
		return subset{}, fmt.Errorf("subset %q: want N/M with 1 ≤ N ≤ M ≤ 256, like 1/5, or a percentage, like 10%%", s)
	}
	return subset{n: n, m: m}, nil
}

// pick returns the packs of ids (sorted) in the subset.
func (s subset) pick(ids []crypt.ID, seed uint64) []crypt.ID {
	switch {
	case s.m > 0:
		return slices.DeleteFunc(ids, func(id crypt.ID) bool { return int(id[0])%s.m != s.n-1 })
	case s.pct > 0:
		rng := rand.New(rand.NewPCG(seed, 0x626b20636865636b))
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := int(math.Ceil(float64(len(ids)) * s.pct / 100))
		ids = ids[:min(k, len(ids))]
		slices.SortFunc(ids, func(a, b crypt.ID) int { return bytes.Compare(a[:], b[:]) })
	}
	return ids
}

// scope says which blobs a finding hurts, to find the snapshots that need them.
type scope uint8

const (
	scopeNone scope = iota // no blobs
	scopeBlob              // the blob Problem.Blob
	scopePack              // the blobs of Problem.Pack that end past limit
)

// finding is a Problem being built.
type finding struct {
	Problem
	warn     bool
	indirect bool // found as the base of a delta in another pack
	scope    scope
	limit    int64
	snaps    map[crypt.ID]bool
}

func (f *finding) key() string {
	return fmt.Sprintf("%s|%s|%x|%x", f.Kind, f.File, f.Pack, f.Blob)
}

// checker carries the state of one Check.
type checker struct {
	r       *Repository
	opts    CheckOptions
	headers bool // check pack headers (repair snapshots does not need them)
	rep     *CheckReport
	bytes   atomic.Int64

	mu        sync.Mutex
	found     []*finding
	byKey     map[string]*finding
	blobFault map[crypt.ID][]*finding
	packFault map[crypt.ID][]*finding
	badTrees  map[crypt.ID]bool
	need      map[crypt.ID]bool // packs the snapshots need (with opts.Snapshot only)

	snaps []*Snapshot
	order map[crypt.ID]int      // snapshot → position in snaps
	files map[crypt.ID]int64    // pack files in the store
	set   *indexSet             // the index as loaded
	bad   map[crypt.ID]struct{} // packs missing or of the wrong size
	plan  *chainPlan            // the delta trees --read-data decodes
}

func (r *Repository) check(ctx context.Context, opts CheckOptions, headers bool) (*checker, error) {
	sub, err := parseSubset(opts.Subset)
	if err != nil {
		return nil, err
	}
	c := &checker{r: r, opts: opts, headers: headers, rep: &CheckReport{Subset: opts.Subset},
		byKey: map[string]*finding{}, blobFault: map[crypt.ID][]*finding{}, packFault: map[crypt.ID][]*finding{},
		badTrees: map[crypt.ID]bool{}, need: map[crypt.ID]bool{}, bad: map[crypt.ID]struct{}{}}
	if err := c.checkKeys(ctx); err != nil {
		return nil, err
	}
	if err := c.loadSnapshots(ctx); err != nil {
		return nil, err
	}
	if err := c.loadIndex(ctx); err != nil {
		return nil, err
	}
	c.checkPackFiles()
	if err := c.walk(ctx, true); err != nil {
		return nil, err
	}
	if c.headers {
		if err := c.checkHeaders(ctx); err != nil {
			return nil, err
		}
	}
	if opts.ReadData || opts.Subset != "" {
		if sub.pct > 0 {
			c.rep.Seed = opts.Seed
			if c.rep.Seed == 0 {
				c.rep.Seed = uint64(time.Now().UnixNano())
			}
		}
		if err := c.readData(ctx, sub.pick(c.packsToRead(), c.rep.Seed)); err != nil {
			return nil, err
		}
	}
	if len(c.blobFault) > 0 || len(c.packFault) > 0 {
		if err := c.walk(ctx, false); err != nil {
			return nil, err
		}
	}
	c.finish()
	return c, nil
}

// add records f unless a finding with the same key exists; it returns the
// finding kept. A direct finding replaces the text of an indirect one.
func (c *checker) add(f *finding) *finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := f.key()
	if old, ok := c.byKey[k]; ok {
		if old.indirect && !f.indirect {
			old.What, old.indirect = f.What, false
		}
		return old
	}
	c.byKey[k] = f
	c.found = append(c.found, f)
	switch f.scope {
	case scopeBlob:
		c.blobFault[f.Blob] = append(c.blobFault[f.Blob], f)
	case scopePack:
		c.packFault[f.Pack] = append(c.packFault[f.Pack], f)
	}
	return f
}

// flaky records that a read of pack id failed once and then succeeded.
func (c *checker) flaky(id crypt.ID, err error) {
	c.add(&finding{warn: true, Problem: Problem{Kind: WarnFlakyRead, Pack: id,
		What: fmt.Sprintf("a read failed (%s) and a second read was clean: a flaky read, not corruption; check the storage", brief(err))}})
}

// brief strips the pack and blob that a Problem names anyway from err.
func brief(err error) string {
	var be *BlobError
	if errors.As(err, &be) {
		err = be.Err
	}
	return strings.ReplaceAll(err.Error(), ": "+ErrCorrupt.Error(), "")
}

func (c *checker) checkKeys(ctx context.Context) error {
	names, err := listNames(ctx, c.r.be, store.KeyFile)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	for _, name := range names {
		if _, err := readKeyFile(ctx, c.r.be, name); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.add(&finding{Problem: Problem{Kind: ProblemKey, File: "keys/" + name, What: brief(err)}})
		}
	}
	return nil
}

// loadSnapshots loads the snapshots to check, reporting files that do not load.
func (c *checker) loadSnapshots(ctx context.Context) error {
	if c.opts.Snapshot != "" {
		s, err := c.r.FindSnapshot(ctx, c.opts.Snapshot, Filter{})
		if err != nil {
			return err
		}
		c.snaps = []*Snapshot{s}
	} else {
		names, err := listNames(ctx, c.r.be, store.SnapshotFile)
		if err != nil {
			return fmt.Errorf("list snapshots: %w", err)
		}
		all := make([]*Snapshot, len(names))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i, name := range names {
			g.Go(func() error {
				id, err := crypt.ParseID(name)
				if err != nil {
					return nil // not a snapshot name; readers ignore it
				}
				s, err := c.r.LoadSnapshot(gctx, id)
				if err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					c.add(&finding{Problem: Problem{Kind: ProblemSnapshotFile, File: "snapshots/" + name,
						What: strings.TrimPrefix(brief(err), "snapshots/"+name+": ")}})
					return nil
				}
				all[i] = s
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for _, s := range all {
			if s != nil {
				c.snaps = append(c.snaps, s)
			}
		}
		slices.SortStableFunc(c.snaps, func(a, b *Snapshot) int { return a.Time.Compare(b.Time) })
	}
	c.order = make(map[crypt.ID]int, len(c.snaps))
	for i, s := range c.snaps {
		c.order[s.ID] = i
		if s.Status == StatusBroken {
			c.add(&finding{warn: true, Problem: Problem{Kind: WarnBrokenSnapshot, File: "snapshots/" + s.ID.String(),
				What: "marked broken because its data is lost; forget it (bk forget " + s.ID.Short() + ")"}})
		}
	}
	c.rep.Snapshots = len(c.snaps)
	return nil
}

// loadIndex reads every index file it can and installs the result as the
// repository's index, so that blobs are looked up as a restore would.
//
// The order of listings matters while snapshots run (they hold shared
// locks too): snapshots were listed before the index files, and the index
// files are read before the packs are listed, so whatever a listed file
// refers to was stored before it was listed (FORMAT.md §10).
func (c *checker) loadIndex(ctx context.Context) error {
	set, err := c.r.readIndexes(ctx, func(name string, err error) {
		c.add(&finding{Problem: Problem{Kind: ProblemIndexFile, File: "index/" + name,
			What: strings.TrimPrefix(brief(err), "index/"+name+": ") + " (bk repair index rebuilds the index from the packs)"}})
	}, true)
	if err != nil {
		return err
	}
	c.files = map[crypt.ID]int64{}
	err = c.r.be.List(ctx, store.PackFile, func(fi store.FileInfo) error {
		if id, err := crypt.ParseID(fi.Name); err == nil {
			c.files[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	c.set = set
	c.r.idxOnce.Lock()
	c.r.idx, c.r.idxDone = set.idx, true
	c.r.idxOnce.Unlock()
	c.rep.Indexes = len(set.names) - len(set.superseded) - len(set.bad)
	c.rep.Packs = len(set.packs)
	for name, by := range set.superseded {
		c.add(&finding{warn: true, Problem: Problem{Kind: WarnSupersededIndex, File: "index/" + name,
			What: "superseded by index " + by[:8] + " and ignored (left by an interrupted repair or prune; repair index removes it)"}})
	}
	for id, ps := range set.packs {
		if ps.conflict != "" {
			c.add(&finding{scope: scopePack, Problem: Problem{Kind: ProblemIndexFile, File: "index/" + ps.conflict, Pack: id,
				What: "lists the pack differently from index " + ps.file[:8]}})
		}
	}
	for id := range c.files {
		if _, ok := set.packs[id]; !ok {
			c.add(&finding{warn: true, Problem: Problem{Kind: WarnUnreferencedPack, Pack: id,
				What: "no index lists this pack (being written by a snapshot, or left by an interrupted one; prune deletes leftovers)"}})
		}
	}
	return nil
}

// checkPackFiles checks that every indexed pack exists with its recorded size.
func (c *checker) checkPackFiles() {
	for id, ps := range c.set.packs {
		size, ok := c.files[id]
		switch {
		case !ok:
			c.bad[id] = struct{}{}
			c.add(&finding{scope: scopePack, Problem: Problem{Kind: ProblemMissingPack, Pack: id, Lost: true,
				What: "the index lists this pack but it does not exist (bk repair index drops it from the index; then bk repair snapshots marks the snapshots that need it broken)"}})
		case size != ps.size:
			c.bad[id] = struct{}{}
			f := &finding{scope: scopePack, Problem: Problem{Kind: ProblemPackSize, Pack: id,
				What: fmt.Sprintf("%d bytes, the index says %d", size, ps.size)}}
			if size < ps.size {
				f.What = fmt.Sprintf("truncated: %d bytes, the index says %d", size, ps.size)
				if ps.maxEnd > size {
					f.Lost, f.limit = true, size
				}
			}
			c.add(f)
		}
	}
}

// packsToRead returns, sorted, the indexed packs that exist with the right
// size (and that the snapshot needs, with opts.Snapshot).
func (c *checker) packsToRead() []crypt.ID {
	var ids []crypt.ID
	for id := range c.set.packs {
		if _, bad := c.bad[id]; bad {
			continue
		}
		if c.opts.Snapshot != "" && !c.need[id] {
			continue
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b crypt.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// walk visits every blob of every snapshot. The first walk (detect) finds
// blobs missing from the index and trees that do not load; a later one
// finds the snapshots that every finding hurts.
func (c *checker) walk(ctx context.Context, detect bool) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, s := range c.snaps {
		g.Go(func() error {
			w := &walker{c: c, snap: s, detect: detect}
			for _, root := range s.roots() {
				if err := w.tree(gctx, root, -1); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

type walker struct {
	c      *checker
	snap   *Snapshot
	detect bool
}

func (w *walker) visit(t pack.BlobType, id crypt.ID, loc index.Location, ok bool, what string) {
	c := w.c
	if w.detect {
		switch {
		case !ok:
			c.add(&finding{scope: scopeBlob, Problem: Problem{Kind: ProblemMissingBlob, Blob: id, Type: t.String(),
				Lost: true, What: what + " is not in the index"}})
		case c.opts.Snapshot != "":
			c.mu.Lock()
			c.need[loc.Pack.ID] = true
			c.mu.Unlock()
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.blobFault[id] {
		f.hurts(w.snap.ID)
	}
	if ok {
		for _, f := range c.packFault[loc.Pack.ID] {
			if loc.Entry.Offset+loc.Entry.Length > f.limit {
				f.hurts(w.snap.ID)
			}
		}
	}
}

func (f *finding) hurts(snap crypt.ID) {
	if f.snaps == nil {
		f.snaps = map[crypt.ID]bool{}
	}
	f.snaps[snap] = true
}

// unreadable reports whether a known finding makes the blob at loc unreadable.
func (c *checker) unreadable(id crypt.ID, loc index.Location) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.badTrees[id] {
		return true
	}
	for _, f := range c.packFault[loc.Pack.ID] {
		if f.Lost && loc.Entry.Offset+loc.Entry.Length > f.limit {
			return true
		}
	}
	return false
}

func (w *walker) tree(ctx context.Context, id crypt.ID, level int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := w.c
	loc, ok := c.r.idx.Lookup(id)
	w.visit(pack.TreeBlob, id, loc, ok, "tree blob")
	if !ok || c.unreadable(id, loc) {
		return nil
	}
	plain, err := c.r.LoadBlob(ctx, pack.TreeBlob, id, nil)
	if err != nil && ctx.Err() == nil {
		var err2 error
		if plain, err2 = c.r.LoadBlob(ctx, pack.TreeBlob, id, nil); err2 == nil {
			c.flaky(loc.Pack.ID, err)
		}
		err = err2
	}
	var lvl int
	var entries []TreeEntry
	if err == nil {
		lvl, entries, err = DecodeTree(plain)
		if err == nil && level >= 0 && lvl != level {
			err = corrupt(nil, "level %d, want %d", lvl, level)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if w.detect {
			c.add(&finding{scope: scopeBlob, Problem: Problem{Kind: ProblemTree, Pack: loc.Pack.ID, Blob: id,
				Type: pack.TreeBlob.String(), Lost: true, What: brief(err)}})
			c.mu.Lock()
			c.badTrees[id] = true
			c.mu.Unlock()
		}
		return nil
	}
	for _, e := range entries {
		if lvl > 0 {
			if err := w.tree(ctx, e.ID, lvl-1); err != nil {
				return err
			}
			continue
		}
		w.chain(e.ID)
	}
	return nil
}

// chain visits a data blob and the bases of its delta chain.
func (w *walker) chain(id crypt.ID) {
	what := "data blob"
	top := id
	for depth := 0; ; depth++ {
		loc, ok := w.c.r.idx.Lookup(id)
		w.visit(pack.DataBlob, id, loc, ok, what)
		if !ok || loc.Entry.Enc != pack.DeltaZstd {
			return
		}
		if depth == maxChainDecode {
			if w.detect {
				w.c.add(&finding{scope: scopeBlob, Problem: Problem{Kind: ProblemBlob, Blob: top, Type: pack.DataBlob.String(),
					Lost: true, What: fmt.Sprintf("delta chain longer than %d links", maxChainDecode)}})
			}
			return
		}
		what = "delta base " + id.Short() + ": data blob"
		id = loc.Entry.Base
	}
}

// checkHeaders reads the header of every pack and compares it with the index.
func (c *checker) checkHeaders(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range c.packsToRead() {
		g.Go(func() error {
			ps := c.set.packs[id]
			salt, entries, err := c.r.readPackHeader(gctx, id, ps.size, &c.bytes, c.opts.Progress)
			if err != nil && gctx.Err() == nil {
				var err2 error
				if salt, entries, err2 = c.r.readPackHeader(gctx, id, ps.size, &c.bytes, c.opts.Progress); err2 == nil {
					c.flaky(id, err)
				}
				err = err2
			}
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				c.add(&finding{scope: scopePack, Problem: Problem{Kind: ProblemPackHeader, Pack: id,
					What: "header: " + brief(err)}})
				return nil
			}
			c.compareHeader(id, ps, salt, entries)
			return nil
		})
	}
	return g.Wait()
}

// compareHeader reports where a pack's header and the index disagree.
func (c *checker) compareHeader(id crypt.ID, ps *packSummary, salt [crypt.SaltSize]byte, entries []pack.Entry) {
	if salt != ps.salt {
		c.add(&finding{scope: scopePack, Problem: Problem{Kind: ProblemPackHeader, Pack: id,
			What: "the salt differs from the index"}})
	}
	if entriesDigest(entries) == ps.digest {
		return
	}
	// Rare: find the entries that differ.
	inHeader := make(map[int64]pack.Entry, len(entries))
	for _, e := range entries {
		inHeader[e.Offset] = e
	}
	const maxDetails = 16
	details := 0
	report := func(e pack.Entry, what string) {
		if details++; details <= maxDetails {
			c.add(&finding{scope: scopeBlob, Problem: Problem{Kind: ProblemPackHeader, Pack: id, Blob: e.ID,
				Type: e.Type.String(), What: what}})
		}
	}
	for _, e := range c.indexEntries(id) {
		h, ok := inHeader[e.Offset]
		switch {
		case !ok:
			report(e, fmt.Sprintf("the index has it at offset %d, the header has no blob there", e.Offset))
		case h != e:
			report(e, fmt.Sprintf("the header says %s, the index says %s", describeEntry(h), describeEntry(e)))
		}
		delete(inHeader, e.Offset)
	}
	for _, e := range inHeader {
		report(e, fmt.Sprintf("the header has it at offset %d, the index does not", e.Offset))
	}
	if details > maxDetails {
		c.add(&finding{scope: scopePack, Problem: Problem{Kind: ProblemPackHeader, Pack: id,
			What: fmt.Sprintf("%d more entries differ between the header and the index", details-maxDetails)}})
	}
	if details == 0 {
		c.add(&finding{scope: scopePack, Problem: Problem{Kind: ProblemPackHeader, Pack: id,
			What: "the header and the index list different blobs"}})
	}
}

func describeEntry(e pack.Entry) string {
	s := fmt.Sprintf("%s blob %s (%s) at %d, %d bytes, %d decoded", e.Type, e.ID.Short(), e.Enc, e.Offset, e.Length, e.RawLength)
	if e.Enc == pack.DeltaZstd {
		s += ", base " + e.Base.Short()
	}
	return s
}

// indexEntries returns the index entries of one pack, by offset. It scans
// the whole index, so it is only used when a pack's header cannot be used.
func (c *checker) indexEntries(id crypt.ID) []pack.Entry {
	var out []pack.Entry
	c.r.idx.Each(func(l index.Location) {
		if l.Pack.ID == id {
			out = append(out, l.Entry)
		}
	})
	slices.SortFunc(out, func(a, b pack.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
	return out
}

// maxMissing caps the missing blobs reported one by one; the rest are
// counted in one more problem.
const maxMissing = 1000

// finish turns the findings into the report: it fills in the snapshots
// each one hurts and sorts them.
func (c *checker) finish() {
	lostByBroken := map[crypt.ID]int{} // broken snapshot → blobs it misses
	var missing []*finding
	for _, f := range c.found {
		if c.opts.Snapshot != "" && f.scope == scopePack && !c.need[f.Pack] {
			continue // a pack the snapshot does not need
		}
		for id := range f.snaps {
			f.Snapshots = append(f.Snapshots, id)
		}
		slices.SortFunc(f.Snapshots, func(a, b crypt.ID) int { return cmp.Compare(c.order[a], c.order[b]) })
		switch {
		case f.Kind == ProblemMissingBlob && c.onlyBroken(f.Snapshots):
			// Only snapshots already marked broken need it, and a new
			// snapshot stores it anew: the warning of each snapshot says it.
			for _, id := range f.Snapshots {
				lostByBroken[id]++
			}
		case f.Kind == ProblemMissingBlob:
			missing = append(missing, f)
		case f.warn:
			c.rep.Warnings = append(c.rep.Warnings, f.Problem)
		default:
			c.rep.Problems = append(c.rep.Problems, f.Problem)
		}
	}
	slices.SortFunc(missing, func(a, b *finding) int { return bytes.Compare(a.Blob[:], b.Blob[:]) })
	for i, f := range missing {
		if i < maxMissing {
			c.rep.Problems = append(c.rep.Problems, f.Problem)
			continue
		}
		f.Snapshots = nil
		for _, g := range missing[i:] {
			for id := range g.snaps {
				f.hurts(id)
			}
		}
		for id := range f.snaps {
			f.Snapshots = append(f.Snapshots, id)
		}
		slices.SortFunc(f.Snapshots, func(a, b crypt.ID) int { return cmp.Compare(c.order[a], c.order[b]) })
		c.rep.Problems = append(c.rep.Problems, Problem{Kind: ProblemMissingBlob, Lost: true, Snapshots: f.Snapshots,
			What: fmt.Sprintf("%d more blobs that snapshots need are not in the index", len(missing)-maxMissing)})
		break
	}
	for i, w := range c.rep.Warnings {
		if w.Kind != WarnBrokenSnapshot {
			continue
		}
		id, _ := crypt.ParseID(strings.TrimPrefix(w.File, "snapshots/"))
		if n := lostByBroken[id]; n > 0 {
			c.rep.Warnings[i].What = fmt.Sprintf("marked broken: %d blobs it needs are missing; forget it (bk forget %s)", n, id.Short())
		}
	}
	for _, list := range [][]Problem{c.rep.Problems, c.rep.Warnings} {
		slices.SortStableFunc(list, func(a, b Problem) int {
			return cmp.Or(strings.Compare(a.File, b.File), bytes.Compare(a.Pack[:], b.Pack[:]),
				bytes.Compare(a.Blob[:], b.Blob[:]), strings.Compare(string(a.Kind), string(b.Kind)))
		})
	}
	if c.rep.Problems == nil {
		c.rep.Problems = []Problem{}
	}
	if c.rep.Warnings == nil {
		c.rep.Warnings = []Problem{}
	}
	c.rep.BytesRead = c.bytes.Load()
}

func (c *checker) onlyBroken(snaps []crypt.ID) bool {
	for _, id := range snaps {
		if c.snaps[c.order[id]].Status != StatusBroken {
			return false
		}
	}
	return len(snaps) > 0
}

// packSummary is what the index says about one pack, in a few bytes.
type packSummary struct {
	salt   [crypt.SaltSize]byte
	size   int64
	maxEnd int64    // the end of its last blob
	digest crypt.ID // of its entries (entriesDigest)
	file   string   // an index file that lists it
	// conflict names another index file that lists it differently.
	conflict string
}

// summarizeIndex adds the packs of index file name to m.
func summarizeIndex(m map[crypt.ID]*packSummary, name string, f *index.File) {
	for _, p := range f.Packs {
		s := &packSummary{salt: p.Salt, size: p.Size, digest: entriesDigest(p.Blobs), file: name}
		for _, e := range p.Blobs {
			s.maxEnd = max(s.maxEnd, e.Offset+e.Length)
		}
		if old, ok := m[p.ID]; ok {
			if old.salt != s.salt || old.size != s.size || old.digest != s.digest {
				old.conflict = name
			}
			continue
		}
		m[p.ID] = s
	}
}

// entriesDigest hashes the entries of a pack in offset order, so that a
// header can be compared with the index without keeping the index's entries.
func entriesDigest(entries []pack.Entry) crypt.ID {
	sorted := slices.SortedFunc(slices.Values(entries), func(a, b pack.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
	b := make([]byte, 0, len(sorted)*(2+2*crypt.IDSize+3*binary.MaxVarintLen64))
	for _, e := range sorted {
		b = append(b, byte(e.Type), byte(e.Enc))
		b = append(b, e.ID[:]...)
		b = append(b, e.Base[:]...)
		b = binary.AppendUvarint(b, uint64(e.Offset))
		b = binary.AppendUvarint(b, uint64(e.Length))
		b = binary.AppendUvarint(b, uint64(e.RawLength))
	}
	return crypt.Hash(b)
}
