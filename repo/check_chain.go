package repo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/delta"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

// This file holds the delta chains of check --read-data. A data blob stored
// as a delta is not decoded when its pack is read: the pack pass only
// authenticates it and keeps its opened (still compressed) program. Each
// chain is then decoded once from its root, a whole blob, depth first, every
// link against its parent's plaintext and verified against its ID. So every
// blob is decoded exactly once, and a walk holds one plaintext per depth.
//
// Packs are read in an order that puts a pack holding deltas before the
// packs holding their bases (newest nights first, as a rule), so that when
// the pack of a root is read, the programs of its whole tree are at hand and
// the root's plaintext, just decoded, is walked at once. A root whose tree
// is not complete then (a cycle between packs, a delta outside a subset, a
// program dropped for memory) is walked at the end, its bytes read again
// with a ranged read; programs not at hand are read the same way.

// chainNode is one blob of a delta tree: a delta, or the whole blob at the
// bottom of its chain (a root).
type chainNode struct {
	loc      index.Location
	children []*chainNode // the deltas based on it that the check decodes
	root     *chainNode   // itself for a root
	depth    int          // delta links below it
	// target says its pack is read: a fault is reported as this blob's own,
	// else as a delta base of a blob that is read.
	target bool

	// Set between packs by the reading goroutine; used by the one walk of
	// the node's tree, which starts after.
	held      []byte // opened delta program, still compressed
	reported  bool   // its pack's read found it at fault and said so
	remaining int    // roots: deltas of the tree whose packs are not read yet
	plain     []byte // roots: plaintext decoded in the pack pass
	walked    bool   // roots
}

// isDelta reports whether the node is a delta rather than a root.
func (n *chainNode) isDelta() bool { return n.root != n }

// firstTarget returns the first blob of n's tree, n included, whose pack is read.
func (n *chainNode) firstTarget() *chainNode {
	if n.target {
		return n
	}
	for _, ch := range n.children {
		if t := ch.firstTarget(); t != nil {
			return t
		}
	}
	return nil
}

// chainPlan is the delta trees that one --read-data decodes.
type chainPlan struct {
	nodes map[crypt.ID]*chainNode
	// inPack counts, for each pack read, the deltas it holds of each tree.
	inPack map[crypt.ID]map[*chainNode]int
	roots  []*chainNode // by ID
	held   atomic.Int64 // bytes of programs held
	// walkers keeps idle *chainWalker with their buffers, from one pack's
	// walks to the next.
	walkers sync.Pool
}

// Memory bounds of the chain walks, beyond one plaintext per depth per worker.
const (
	// maxHeldPrograms caps the delta programs kept from the pack pass for
	// the walks; beyond it programs are read again when their chain is.
	maxHeldPrograms = 512 << 20
	// maxPackRoots caps the root plaintexts kept from the read of one pack
	// for the walks that follow it; beyond it roots are read again later.
	maxPackRoots = 128 << 20
)

// node returns the plan's node for entry e of pack p, or nil when the blob
// is not part of a delta tree (or e is not the copy the index reads).
func (pl *chainPlan) node(p crypt.ID, e pack.Entry) *chainNode {
	if pl == nil {
		return nil
	}
	n := pl.nodes[e.ID]
	if n == nil || n.loc.Pack.ID != p || n.loc.Entry != e {
		return nil
	}
	return n
}

// planChains builds the delta trees above the data blobs stored as deltas
// in the packs read, and returns those packs in the order to read them.
// Deltas whose chain does not end in an indexed whole data blob within
// maxChainDecode links are left out: verifyBlob decodes them one by one,
// as a restore would, to report what is wrong.
func (c *checker) planChains(read []crypt.ID) (*chainPlan, []crypt.ID) {
	inRead := make(map[crypt.ID]bool, len(read))
	for _, id := range read {
		inRead[id] = true
	}
	var deltas []index.Location
	c.r.idx.Each(func(l index.Location) {
		if l.Entry.Enc == pack.DeltaZstd && l.Entry.Type == pack.DataBlob && inRead[l.Pack.ID] {
			deltas = append(deltas, l)
		}
	})
	pl := &chainPlan{nodes: map[crypt.ID]*chainNode{}, inPack: map[crypt.ID]map[*chainNode]int{}}
	broken := map[crypt.ID]bool{} // blobs whose chain does not end well
	var path []index.Location
	for _, l := range deltas {
		if cur, ok := c.r.idx.Lookup(l.Entry.ID); !ok || cur != l {
			continue // another copy of the blob is the one read
		}
		if pl.nodes[l.Entry.ID] != nil {
			continue // the base of a delta planned already
		}
		// Follow the bases down to a node of the plan or a root.
		path = append(path[:0], l)
		var below *chainNode
		ok := true
		for below == nil {
			top := path[len(path)-1]
			if n := pl.nodes[top.Entry.ID]; n != nil {
				below, path = n, path[:len(path)-1]
				break
			}
			if broken[top.Entry.ID] || len(path) > maxChainDecode {
				ok = false
				break
			}
			if top.Entry.Enc != pack.DeltaZstd {
				below = &chainNode{loc: top, target: inRead[top.Pack.ID]}
				below.root = below
				pl.nodes[top.Entry.ID] = below
				pl.roots = append(pl.roots, below)
				path = path[:len(path)-1]
				break
			}
			base, found := c.r.idx.Lookup(top.Entry.Base)
			if !found || base.Entry.Type != pack.DataBlob || slices.ContainsFunc(path, func(x index.Location) bool { return x.Entry.ID == base.Entry.ID }) {
				ok = false
				break
			}
			path = append(path, base)
		}
		if !ok || below.depth+len(path) > maxChainDecode {
			for _, x := range path {
				broken[x.Entry.ID] = true
			}
			continue
		}
		for i := len(path) - 1; i >= 0; i-- {
			x := path[i]
			n := &chainNode{loc: x, root: below.root, depth: below.depth + 1, target: inRead[x.Pack.ID]}
			below.children = append(below.children, n)
			pl.nodes[x.Entry.ID] = n
			n.root.remaining++
			if n.target {
				m := pl.inPack[x.Pack.ID]
				if m == nil {
					m = map[*chainNode]int{}
					pl.inPack[x.Pack.ID] = m
				}
				m[n.root]++
			}
			below = n
		}
	}
	slices.SortFunc(pl.roots, func(a, b *chainNode) int { return bytes.Compare(a.loc.Entry.ID[:], b.loc.Entry.ID[:]) })
	for _, n := range pl.nodes {
		slices.SortFunc(n.children, func(a, b *chainNode) int {
			return cmp.Or(bytes.Compare(a.loc.Pack.ID[:], b.loc.Pack.ID[:]), cmp.Compare(a.loc.Entry.Offset, b.loc.Entry.Offset))
		})
	}
	return pl, pl.order(read)
}

// order returns the packs read (sorted) so that, as far as cycles allow, a
// pack holding a delta comes before the pack holding its base.
func (pl *chainPlan) order(read []crypt.ID) []crypt.ID {
	pos := make(map[crypt.ID]int, len(read))
	for i, id := range read {
		pos[id] = i
	}
	after := make([][]int, len(read)) // pack → packs of bases of its deltas
	indeg := make([]int, len(read))
	seen := map[[2]int]bool{}
	for _, n := range pl.nodes {
		for _, ch := range n.children {
			a, okA := pos[ch.loc.Pack.ID]
			b, okB := pos[n.loc.Pack.ID]
			if !okA || !okB || a == b || seen[[2]int{a, b}] {
				continue
			}
			seen[[2]int{a, b}] = true
			after[a] = append(after[a], b)
			indeg[b]++
		}
	}
	out := make([]crypt.ID, 0, len(read))
	done := make([]bool, len(read))
	var ready []int
	for i := range read {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(out) < len(read) {
		if len(ready) == 0 {
			// A cycle: break it at the first pack left.
			i := slices.Index(done, false)
			indeg[i] = 0
			ready = append(ready, i)
		}
		slices.Sort(ready)
		next := ready
		ready = nil
		for _, i := range next {
			if done[i] {
				continue
			}
			done[i] = true
			out = append(out, read[i])
			for _, j := range after[i] {
				if indeg[j]--; indeg[j] == 0 && !done[j] {
					ready = append(ready, j)
				}
			}
		}
	}
	return out
}

// packChains is what the read of one pack leaves for the chain walks.
type packChains struct {
	mu       sync.Mutex
	held     map[*chainNode][]byte // opened programs of deltas
	plain    map[*chainNode][]byte // decoded, verified roots whose trees are complete
	plainLen int64
	bad      map[*chainNode]bool // blobs found at fault
}

func newPackChains() *packChains {
	return &packChains{held: map[*chainNode][]byte{}, plain: map[*chainNode][]byte{}, bad: map[*chainNode]bool{}}
}

// walkNow reports whether the tree of root n, whose pack p is being read,
// is complete once p is: then n's plaintext is kept for its walk, within
// maxPackRoots.
func (pc *packChains) walkNow(pl *chainPlan, p crypt.ID, n *chainNode) bool {
	if n.remaining != pl.inPack[p][n] {
		return false
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.plainLen+n.loc.Entry.RawLength > maxPackRoots {
		return false
	}
	pc.plainLen += n.loc.Entry.RawLength
	return true
}

// verifyChainBlob is verifyBlob for a blob of a delta tree: a delta is
// authenticated and its program kept; a root is decoded and verified now
// when its tree is complete, else only authenticated. It returns the
// finding when the blob is at fault.
func (c *checker) verifyChainBlob(n *chainNode, p index.Pack, sealed []byte, pc *packChains, bad func(string) *finding) *finding {
	loc := index.Location{Pack: p, Entry: n.loc.Entry}
	fault := func(err error) *finding {
		pc.mu.Lock()
		pc.bad[n] = true
		pc.mu.Unlock()
		return bad(brief(err))
	}
	if n.isDelta() || !pc.walkNow(c.plan, p.ID, n) {
		stored, err := c.r.openSealed(loc, sealed)
		if err != nil {
			return fault(err)
		}
		if n.isDelta() {
			pc.mu.Lock()
			pc.held[n] = bytes.Clone(stored)
			pc.mu.Unlock()
		}
		return nil
	}
	plain, err := c.r.openBlob(loc, sealed, nil, nil)
	if err != nil {
		return fault(err)
	}
	c.decoded(n.loc.Entry.ID)
	if got := c.r.key.BlobID(plain); got != n.loc.Entry.ID {
		return fault(corrupt(nil, "content hashes to %s", got.Short()))
	}
	pc.mu.Lock()
	pc.plain[n] = plain
	pc.mu.Unlock()
	return nil
}

// commitChains hands what the read of pack p left to the walks, and walks
// the trees it completed.
func (c *checker) commitChains(ctx context.Context, p crypt.ID, pc *packChains) {
	pl := c.plan
	if pl == nil {
		return
	}
	for n, b := range pc.held {
		if pl.held.Load()+int64(len(b)) <= maxHeldPrograms {
			n.held = b
			pl.held.Add(int64(len(b)))
		}
	}
	for n := range pc.bad {
		n.reported = true
	}
	for root, k := range pl.inPack[p] {
		root.remaining -= k
	}
	var now []*chainNode
	for n, b := range pc.plain {
		n.plain = b
		now = append(now, n)
	}
	slices.SortFunc(now, func(a, b *chainNode) int { return bytes.Compare(a.loc.Entry.ID[:], b.loc.Entry.ID[:]) })
	c.walkChains(ctx, now)
}

// walkChains walks the trees of roots with the repository's workers.
func (c *checker) walkChains(ctx context.Context, roots []*chainNode) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(c.r.workers, len(roots)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, _ := c.plan.walkers.Get().(*chainWalker)
			if w == nil {
				w = &chainWalker{c: c}
			}
			defer c.plan.walkers.Put(w)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(roots) {
					return
				}
				w.root(ctx, roots[i])
			}
		}()
	}
	wg.Wait()
}

// walkRest walks the trees that no pack read completed.
func (c *checker) walkRest(ctx context.Context) {
	if c.plan == nil {
		return
	}
	var rest []*chainNode
	for _, n := range c.plan.roots {
		if !n.walked {
			rest = append(rest, n)
		}
	}
	c.walkChains(ctx, rest)
}

// chainWalker decodes delta trees one at a time, with a plaintext buffer per depth.
type chainWalker struct {
	c      *checker
	bufs   [][]byte
	sealed []byte
	prog   []byte
}

// errReported marks a blob whose pack's read already reported it.
var errReported = errors.New("reported with its pack")

func (w *chainWalker) buf(depth int) []byte {
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	return w.bufs[depth]
}

// root decodes root n, unless its pack's read did, and walks its tree.
func (w *chainWalker) root(ctx context.Context, n *chainNode) {
	n.walked = true
	plain := n.plain
	n.plain = nil
	if plain == nil {
		var err error
		if plain, err = w.loadRoot(ctx, n); err != nil {
			w.fault(ctx, n, err)
			return
		}
	}
	w.children(ctx, n, plain)
}

// loadRoot reads, decodes and verifies root n.
func (w *chainWalker) loadRoot(ctx context.Context, n *chainNode) ([]byte, error) {
	if n.reported {
		return nil, errReported
	}
	var plain []byte
	err := w.read(ctx, n, func(sealed []byte) error {
		var err error
		plain, err = w.c.r.openBlob(n.loc, sealed, nil, w.buf(0))
		return err
	})
	if err != nil {
		return nil, err
	}
	w.bufs[0] = plain
	w.c.decoded(n.loc.Entry.ID)
	if got := w.c.r.key.BlobID(plain); got != n.loc.Entry.ID {
		return nil, w.fail(n, corrupt(nil, "content hashes to %s", got.Short()))
	}
	return plain, nil
}

// children decodes the children of n, whose plaintext is plain, and their trees.
func (w *chainWalker) children(ctx context.Context, n *chainNode, plain []byte) {
	for _, ch := range n.children {
		if ctx.Err() != nil {
			return
		}
		out, err := w.decode(ctx, ch, plain)
		if err != nil {
			w.fault(ctx, ch, err)
			continue
		}
		w.children(ctx, ch, out)
	}
}

// decode decodes delta n against its base's plaintext and verifies it.
func (w *chainWalker) decode(ctx context.Context, n *chainNode, base []byte) ([]byte, error) {
	c := w.c
	stored := n.held
	if stored != nil {
		n.held = nil
		c.plan.held.Add(-int64(len(stored)))
	} else {
		if n.reported {
			return nil, errReported
		}
		err := w.read(ctx, n, func(sealed []byte) error {
			var err error
			stored, err = c.r.openSealed(n.loc, sealed)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	e := n.loc.Entry
	var err error
	w.prog, err = c.r.blobDec.DecodeAll(stored, w.prog[:0])
	if err != nil {
		return nil, w.fail(n, corrupt(err, "decompress delta"))
	}
	out, err := delta.Decode(w.buf(n.depth), base, w.prog, int(e.RawLength))
	if err != nil {
		return nil, w.fail(n, corrupt(err, "apply delta to base %s", e.Base.Short()))
	}
	w.bufs[n.depth] = out
	if int64(len(out)) != e.RawLength {
		return nil, w.fail(n, corrupt(nil, "decoded %d bytes, index says %d", len(out), e.RawLength))
	}
	c.decoded(e.ID)
	if got := c.r.key.BlobID(out); got != e.ID {
		return nil, w.fail(n, corrupt(nil, "content hashes to %s", got.Short()))
	}
	return out, nil
}

func (w *chainWalker) fail(n *chainNode, err error) error {
	return &BlobError{Pack: n.loc.Pack.ID, Blob: n.loc.Entry.ID, Err: err}
}

// errRead marks a blob that could not be read (not corruption of its bytes).
type errRead struct{ error }

func (e errRead) Unwrap() error { return e.error }

// read fetches the sealed bytes of n with a ranged read and passes them to
// open; when that fails it tries once more, and a clean second try is
// reported as a flaky read.
func (w *chainWalker) read(ctx context.Context, n *chainNode, open func(sealed []byte) error) error {
	c := w.c
	try := func() error {
		l := n.loc.Entry.Length
		if l < 0 || l > pack.MaxBlobSize {
			return w.fail(n, corrupt(nil, "sealed length %d", l))
		}
		if int64(cap(w.sealed)) < l {
			w.sealed = make([]byte, l)
		}
		sealed := w.sealed[:l]
		h := store.Handle{Type: store.PackFile, Name: n.loc.Pack.ID.String()}
		err := c.r.be.Get(ctx, h, n.loc.Entry.Offset, l, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, sealed)
			return err
		})
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = corrupt(err, "pack is shorter than the index says")
			}
			return errRead{w.fail(n, fmt.Errorf("read: %w", err))}
		}
		c.bytes.Add(l)
		c.opts.Progress.addBytes(l)
		return open(sealed)
	}
	err := try()
	if err == nil || ctx.Err() != nil {
		return err
	}
	if err2 := try(); err2 != nil {
		return err2
	}
	c.flaky(n.loc.Pack.ID, err)
	return nil
}

// fault reports blob n, which did not decode: as its own fault when its
// pack is read, else as the delta base of a blob that is.
func (w *chainWalker) fault(ctx context.Context, n *chainNode, err error) {
	c := w.c
	if ctx.Err() != nil || errors.Is(err, errReported) {
		return
	}
	id := n.loc.Pack.ID
	if _, missing := c.bad[id]; missing {
		return // reported with its pack
	}
	if errors.As(err, new(errRead)) {
		c.mu.Lock()
		packFault := len(c.packFault[id]) > 0
		c.mu.Unlock()
		if packFault {
			return
		}
	}
	f := &finding{scope: scopeBlob, Problem: Problem{Kind: ProblemBlob, Pack: id, Blob: n.loc.Entry.ID,
		Type: pack.DataBlob.String(), Lost: true, What: brief(err)}}
	if !n.target {
		t := n.firstTarget()
		if t == nil {
			return
		}
		f.indirect = true
		f.What += " (found as a delta base of blob " + t.loc.Entry.ID.Short() + ")"
	}
	c.add(f)
}

// openSealed authenticates one sealed blob read from loc and returns its
// stored (encoded) plaintext; sealed is decrypted in place.
func (r *Repository) openSealed(loc index.Location, sealed []byte) ([]byte, error) {
	fail := func(err error) error { return &BlobError{Pack: loc.Pack.ID, Blob: loc.Entry.ID, Err: err} }
	s, err := r.key.Subkey(loc.Pack.Salt)
	if err != nil {
		return nil, fail(err)
	}
	if loc.Entry.RawLength > pack.MaxBlobSize {
		return nil, fail(corrupt(nil, "raw length %d", loc.Entry.RawLength))
	}
	stored, err := pack.OpenBlob(s, loc.Entry, sealed[:0], sealed)
	if err != nil {
		return nil, fail(corrupt(err, "decrypt"))
	}
	return stored, nil
}

// decoded tells the test hook that the check decoded blob id.
func (c *checker) decoded(id crypt.ID) {
	if c.opts.onDecode != nil {
		c.opts.onDecode(id)
	}
}

// decodedChain tells the test hook that the check decoded the chain of
// delta base id, every link of it.
func (c *checker) decodedChain(id crypt.ID) {
	if c.opts.onDecode == nil {
		return
	}
	for range maxChainDecode {
		l, ok := c.r.idx.Lookup(id)
		if !ok {
			return
		}
		c.opts.onDecode(id)
		if l.Entry.Enc != pack.DeltaZstd {
			return
		}
		id = l.Entry.Base
	}
}
