package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

// This file holds the parts of Check that read pack data: headers through
// ranged reads, and whole packs for --read-data.

// readData downloads the packs ids one at a time (the next one while the
// current one is verified) and verifies them. Delta chains are decoded once
// each, from their roots (check_chain.go), which decides the order of ids.
func (c *checker) readData(ctx context.Context, ids []crypt.ID) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.plan, ids = c.planChains(ids)
	type fetched struct {
		id   crypt.ID
		data []byte
		err  error
	}
	ch := make(chan fetched)
	go func() {
		defer close(ch)
		for _, id := range ids {
			data, err := c.fetch(ctx, id)
			select {
			case ch <- fetched{id, data, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for f := range ch {
		if err := c.checkPackData(ctx, f.id, f.data, f.err); err != nil {
			return err
		}
	}
	if ctx.Err() == nil {
		c.walkRest(ctx)
	}
	return ctx.Err()
}

// fetch downloads a whole pack.
func (c *checker) fetch(ctx context.Context, id crypt.ID) ([]byte, error) {
	size := c.set.packs[id].size
	var data []byte
	err := c.r.be.Get(ctx, store.Handle{Type: store.PackFile, Name: id.String()}, 0, 0, func(rd io.Reader) error {
		data = make([]byte, size)
		n, err := io.ReadFull(rd, data)
		data = data[:n]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil // shorter than the index says: verifyPack reports it
		}
		if err != nil {
			return err
		}
		rest, err := io.ReadAll(rd)
		data = append(data, rest...)
		return err
	})
	c.bytes.Add(int64(len(data)))
	c.opts.Progress.addBytes(int64(len(data)))
	return data, err
}

// checkPackData verifies one downloaded pack, reading it again if it
// fails, and then decodes the delta trees the pack completes.
func (c *checker) checkPackData(ctx context.Context, id crypt.ID, data []byte, err error) error {
	c.mu.Lock()
	c.rep.PacksRead++
	c.mu.Unlock()
	pc := newPackChains()
	found := c.verifyPack(ctx, id, data, err, true, pc)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(found) > 0 {
		data, err = c.fetch(ctx, id)
		pc = newPackChains()
		again := c.verifyPack(ctx, id, data, err, false, pc)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if len(again) == 0 {
			c.flaky(id, errors.New(found[0].What))
		}
		for _, f := range again {
			c.add(f)
		}
	}
	c.commitChains(ctx, id, pc)
	return ctx.Err()
}

// verifyPack checks a pack's bytes: its name, its header and every blob.
// It returns what it finds wrong in this pack; problems with delta bases in
// other packs are recorded directly.
func (c *checker) verifyPack(ctx context.Context, id crypt.ID, data []byte, err error, count bool, pc *packChains) []*finding {
	ps := c.set.packs[id]
	if err != nil {
		return []*finding{{scope: scopePack, Problem: Problem{Kind: ProblemPackRead, Pack: id, What: "read: " + err.Error()}}}
	}
	var found []*finding
	if int64(len(data)) != ps.size {
		found = append(found, &finding{scope: scopePack, Problem: Problem{Kind: ProblemPackSize, Pack: id,
			What: fmt.Sprintf("read %d bytes, the index says %d", len(data), ps.size)}})
	}
	hashOK := crypt.Hash(data) == id
	salt, entries, herr := pack.ReadHeader(bytes.NewReader(data), int64(len(data)), c.r.key.Subkey)
	if herr != nil {
		found = append(found, &finding{scope: scopePack, Problem: Problem{Kind: ProblemPackHeader, Pack: id,
			What: "header: " + brief(herr)}})
	}
	if herr != nil || salt != ps.salt || entriesDigest(entries) != ps.digest {
		// Restores read through the index, so verify what it lists.
		entries = c.indexEntries(id)
	}
	if count {
		c.mu.Lock()
		c.rep.BlobsChecked += int64(len(entries))
		c.mu.Unlock()
	}
	p := index.Pack{ID: id, Salt: ps.salt, Size: ps.size}
	found = append(found, c.verifyBlobs(ctx, p, entries, data, pc)...)
	if !hashOK && len(found) == 0 {
		found = append(found, &finding{scope: scopePack, Problem: Problem{Kind: ProblemPackHash, Pack: id,
			What: "the content does not match the pack's name, though every blob verified"}})
	}
	return found
}

// verifyBlobs decrypts, decodes and verifies the blobs of one pack with
// the repository's workers; what the delta trees need goes to pc.
func (c *checker) verifyBlobs(ctx context.Context, p index.Pack, entries []pack.Entry, data []byte, pc *packChains) []*finding {
	var (
		mu    sync.Mutex
		found []*finding
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	bases := &baseCache{max: 32 << 20, m: map[crypt.ID]cachedBase{}, failed: map[crypt.ID]error{}}
	for range min(c.r.workers, len(entries)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sealed, plain []byte
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(entries) {
					return
				}
				var f *finding
				sealed, plain, f = c.verifyBlob(ctx, p, entries[i], data, pc, bases, sealed, plain)
				if f != nil {
					mu.Lock()
					found = append(found, f)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return found
}

// verifyBlob verifies one blob of a pack; it returns the finding when the
// blob is at fault, and the (possibly grown) scratch buffers. A blob of a
// delta tree is left to the tree's walk (verifyChainBlob); only deltas
// outside the trees are decoded here, with their bases loaded one by one.
func (c *checker) verifyBlob(ctx context.Context, p index.Pack, e pack.Entry, data []byte, pc *packChains, bases *baseCache, sealed, plain []byte) ([]byte, []byte, *finding) {
	bad := func(what string) *finding {
		return &finding{scope: scopeBlob, Problem: Problem{Kind: ProblemBlob, Pack: p.ID, Blob: e.ID,
			Type: e.Type.String(), Lost: true, What: what}}
	}
	if e.Offset < pack.PreambleSize || e.Length < 0 || e.Offset+e.Length > int64(len(data)) {
		return sealed, plain, bad(fmt.Sprintf("lies at %d+%d, past the end of the pack", e.Offset, e.Length))
	}
	// A copy: openBlob decrypts in place, and the pack may be read again.
	sealed = append(sealed[:0], data[e.Offset:e.Offset+e.Length]...)
	if n := c.plan.node(p.ID, e); n != nil {
		return sealed, plain, c.verifyChainBlob(n, p, sealed, pc, bad)
	}
	var base []byte
	verified := true
	// baseFault reports a delta base that does not load; it returns the
	// finding if this blob is at fault.
	baseFault := func(err error) *finding {
		if ctx.Err() != nil {
			return nil
		}
		var be *BlobError
		if errors.As(err, &be) && be.Blob != e.ID {
			// The base (or a link below it) is at fault, not this blob.
			if _, missing := c.bad[be.Pack]; !missing { // else reported with its pack
				c.add(&finding{scope: scopeBlob, indirect: true, Problem: Problem{Kind: ProblemBlob, Pack: be.Pack,
					Blob: be.Blob, Type: pack.DataBlob.String(), Lost: true,
					What: brief(err) + " (found as a delta base of blob " + e.ID.Short() + ")"}})
			}
			return nil
		}
		return bad("delta base " + e.Base.Short() + ": " + brief(err))
	}
	if e.Enc == pack.DeltaZstd {
		var err error
		if base, verified, err = c.loadBase(ctx, e.Base, bases, false); err != nil {
			return sealed, plain, baseFault(err)
		}
	}
	loc := index.Location{Pack: p, Entry: e}
	out, err := c.r.openBlob(loc, sealed, base, plain)
	var got crypt.ID
	if err == nil {
		c.decoded(e.ID)
		got = c.r.key.BlobID(out)
	}
	if (err != nil || got != e.ID) && !verified {
		// The base was decoded without checking it against its ID: check
		// it now, to tell whether it or this blob is at fault.
		if base, _, err = c.loadBase(ctx, e.Base, bases, true); err != nil {
			return sealed, plain, baseFault(err)
		}
		sealed = append(sealed[:0], data[e.Offset:e.Offset+e.Length]...)
		if out, err = c.r.openBlob(loc, sealed, base, plain); err == nil {
			got = c.r.key.BlobID(out)
		}
	}
	if err != nil {
		return sealed, plain, bad(brief(err))
	}
	if got != e.ID {
		return sealed, out, bad("content hashes to " + got.Short())
	}
	return sealed, out, nil
}

// baseCache keeps the decoded delta bases of one pack's blobs, up to max bytes.
type baseCache struct {
	mu     sync.Mutex
	max    int
	size   int
	m      map[crypt.ID]cachedBase
	failed map[crypt.ID]error
}

type cachedBase struct {
	plain    []byte
	verified bool
}

// loadBase returns the decoded plaintext of a delta base, from the cache or
// from the repository, and whether it was verified against its ID.
//
// Unless verify is set, the chain is decoded without checking its result:
// every link is authenticated, the base is verified in its own pack's pass,
// and a wrong base makes the delta's own check fail, after which the caller
// asks again with verify. Verified loads are read twice before the base is
// declared bad.
func (c *checker) loadBase(ctx context.Context, id crypt.ID, bases *baseCache, verify bool) ([]byte, bool, error) {
	bases.mu.Lock()
	cb, ok := bases.m[id]
	err := bases.failed[id]
	bases.mu.Unlock()
	if err != nil || ok && (cb.verified || !verify) {
		return cb.plain, cb.verified, err
	}
	var b []byte
	if !verify {
		b, _, err = c.r.loadChain(ctx, nil, pack.DataBlob, id, nil, nil, 1, false)
		if err != nil {
			return c.loadBase(ctx, id, bases, true)
		}
	} else {
		b, err = c.r.LoadBlob(ctx, pack.DataBlob, id, nil)
		if err != nil && ctx.Err() == nil {
			b2, err2 := c.r.LoadBlob(ctx, pack.DataBlob, id, nil)
			if err2 == nil {
				var be *BlobError
				if errors.As(err, &be) {
					c.flaky(be.Pack, err)
				}
			}
			b, err = b2, err2
		}
	}
	if ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	bases.mu.Lock()
	defer bases.mu.Unlock()
	if err != nil {
		bases.failed[id] = err
		return nil, false, err
	}
	c.decodedChain(id)
	if old, ok := bases.m[id]; ok {
		bases.size -= len(old.plain)
		delete(bases.m, id)
	}
	if bases.size+len(b) <= bases.max {
		bases.m[id] = cachedBase{b, verify}
		bases.size += len(b)
	}
	return b, verify, nil
}

// readPackHeader reads and authenticates the header of a pack of the given
// size with ranged reads: the preamble and the tail of the pack, and the
// header's start when the tail did not hold it all. n and p count the bytes.
func (r *Repository) readPackHeader(ctx context.Context, id crypt.ID, size int64, n *atomic.Int64, p *Progress) ([crypt.SaltSize]byte, []pack.Entry, error) {
	ra := &packReader{ctx: ctx, r: r, h: store.Handle{Type: store.PackFile, Name: id.String()}, size: size, n: n, p: p}
	return pack.ReadHeader(ra, size, r.key.Subkey)
}

// tailSize is how much of a pack's end one read fetches for its header:
// enough for the header of a pack of about a thousand blobs.
const tailSize = 128 << 10

// packReader is an io.ReaderAt over a pack in the store that fetches the
// pack's tail once and everything else with ranged reads.
type packReader struct {
	ctx  context.Context
	r    *Repository
	h    store.Handle
	size int64
	tail []byte
	n    *atomic.Int64
	p    *Progress
}

func (pr *packReader) ReadAt(b []byte, off int64) (int, error) {
	tailOff := max(0, pr.size-tailSize)
	if pr.tail == nil && off+int64(len(b)) > tailOff {
		t, err := store.ReadAt(pr.ctx, pr.r.be, pr.h, tailOff, pr.size-tailOff)
		if err != nil {
			return 0, err
		}
		pr.count(len(t))
		pr.tail = t
	}
	if pr.tail != nil && off >= tailOff && off+int64(len(b)) <= pr.size {
		return copy(b, pr.tail[off-tailOff:]), nil
	}
	d, err := store.ReadAt(pr.ctx, pr.r.be, pr.h, off, int64(len(b)))
	if err != nil {
		return 0, err
	}
	pr.count(len(d))
	return copy(b, d), nil
}

func (pr *packReader) count(n int) {
	if pr.n != nil {
		pr.n.Add(int64(n))
	}
	pr.p.addBytes(int64(n))
}
