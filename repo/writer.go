package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/blobcache"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

const (
	// uploaders is the number of concurrent pack uploads.
	uploaders = 2
	// indexFlushBlobs bounds the blobs one session keeps unwritten in an
	// index; a long stream writes several index files.
	indexFlushBlobs = 1 << 15
	// syncPoll is how long sync waits for a blob that another snapshot of
	// the batch claimed and is still encoding.
	syncPoll = 5 * time.Millisecond
)

// SnapshotOptions describe the snapshot to record.
type SnapshotOptions struct {
	Name     string
	Host     string
	Username string
	Tags     []string
	Time     time.Time // zero means now
	Command  string    // program name of the source command, if any
	Program  string    // "bk <version>"
	// AllowEmpty records a 0-byte stream instead of failing with ErrEmpty.
	AllowEmpty bool
	// NoDelta stores new chunks whole even when the repository allows deltas.
	NoDelta bool
	// FailOnShrink fails with ErrShrunk, instead of recording a suspicious
	// snapshot, when the stream is less than half the size of the newest
	// good snapshot of the same source.
	FailOnShrink bool
	// Manifest is the source's own description of the dump (engines), or
	// nil. It is called after the stream ended, so it may describe it.
	Manifest func() json.RawMessage
	Progress *Progress
}

// Snapshot kinds.
const (
	// KindStream is one stream: a dump.
	KindStream = "stream"
	// KindTree is a directory tree: a content stream and a catalogue.
	KindTree = "tree"
)

// history is what the earlier snapshots of a source tell a new one.
type history struct {
	// lastUsable, the newest earlier snapshot that is not broken, gives
	// the delta bases; lastGood is the yardstick for a suspicious shrink.
	lastUsable, lastGood *Snapshot
}

func (r *Repository) sourceHistory(ctx context.Context, name, host string) (history, error) {
	earlier, err := r.Snapshots(ctx, Filter{Name: name, Host: host})
	if err != nil {
		return history{}, err
	}
	var h history
	for _, e := range earlier {
		if e.Status != StatusBroken {
			h.lastUsable = e
		}
		if e.Status == "" {
			h.lastGood = e
		}
	}
	return h, nil
}

// saveNew sets the status and manifest of a new snapshot and saves it, or
// fails with ErrShrunk when the options say so.
func (r *Repository) saveNew(ctx context.Context, snap *Snapshot, h history, opts SnapshotOptions) error {
	if opts.Manifest != nil {
		snap.Manifest = opts.Manifest()
	}
	if g := h.lastGood; g != nil && snap.Size < g.Size/2 {
		if opts.FailOnShrink {
			return fmt.Errorf("the %s has %d bytes, less than half of the %d bytes of snapshot %s: %w",
				snap.Kind, snap.Size, g.Size, g.ID.Short(), ErrShrunk)
		}
		snap.Status = StatusSuspicious
	}
	return r.SaveSnapshot(ctx, snap)
}

// baseCache opens the local cache of delta bases of one source.
func (r *Repository) baseCache(name, host string) (*blobcache.Cache, error) {
	key := r.key.BlobID([]byte("bk base cache\x00" + name + "\x00" + host))
	max := r.opts.CacheMax
	if max == 0 {
		max = 4 << 30
	}
	return blobcache.Open(filepath.Join(r.opts.CacheDir, r.cfg.ID.String(), "bases", key.String()[:16]), max)
}

// snapScope is what one snapshot of a session adds up: the blobs it stored,
// its progress and its source's base cache.
type snapScope struct {
	bytes, blobs, deltas atomic.Int64
	progress             *Progress
	cache                *blobcache.Cache // nil: no cache (local repositories)
	curMu                sync.Mutex
	current              map[crypt.ID]struct{} // chunks of this snapshot, when cache is set
}

// openScope starts a snapshot's scope in the session, with the base cache
// of its source for repositories that have one (not local ones).
func (s *session) openScope(name, host string, p *Progress) (*snapScope, error) {
	sc := &snapScope{progress: p}
	if s.r.opts.CacheDir != "" {
		var err error
		if sc.cache, err = s.r.baseCache(name, host); err != nil {
			return nil, err
		}
		sc.current = map[crypt.ID]struct{}{}
	}
	s.scopeMu.Lock()
	s.scopes[sc] = struct{}{}
	s.scopeMu.Unlock()
	return sc, nil
}

// closeScope ends a snapshot's scope. When the snapshot was saved, its base
// cache keeps the packs that hold its chunks: tomorrow's bases. The cache
// is an optimisation; failing to trim it fails nothing.
func (s *session) closeScope(sc *snapScope, saved bool) {
	s.scopeMu.Lock()
	delete(s.scopes, sc)
	s.scopeMu.Unlock()
	if sc.cache == nil || !saved {
		return
	}
	sc.curMu.Lock()
	packs := make(map[crypt.ID]struct{})
	for id := range sc.current {
		if loc, ok := s.r.idx.Lookup(id); ok {
			packs[loc.Pack.ID] = struct{}{}
		}
	}
	sc.curMu.Unlock()
	_ = sc.cache.Retain(func(p crypt.ID) bool { _, ok := packs[p]; return ok })
}

// noteCurrent records that the snapshot uses chunk id, so the base cache
// keeps it.
func (sc *snapScope) noteCurrent(id crypt.ID) {
	if sc.cache == nil {
		return
	}
	sc.curMu.Lock()
	sc.current[id] = struct{}{}
	sc.curMu.Unlock()
}

func (sc *snapScope) uses(id crypt.ID) bool {
	sc.curMu.Lock()
	defer sc.curMu.Unlock()
	_, ok := sc.current[id]
	return ok
}

// session is one write session: it deduplicates blobs, fills packs and
// uploads them, and writes the index files for what it stored. Several
// streams, of one or more snapshots, may write through it at once and share
// its packs.
type session struct {
	r      *Repository
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex // guards inflight, claims and their consistency with r.idx
	inflight map[crypt.ID]uint64
	claims   uint64 // claim sequence: inflight holds each blob's number

	packMu  [3]sync.Mutex // per blob type
	packers [3]*pack.Writer

	uploads chan upload
	upWG    sync.WaitGroup
	free    chan []byte // buffers of stored data packs, for reuse

	// Packs handed to the uploaders and not yet stored and queued for the
	// index, by ticket; sync waits for those sent before it.
	upMu      sync.Mutex
	upCond    *sync.Cond
	upTickets uint64
	upPending map[uint64]struct{}

	idxMu   sync.Mutex
	pending index.File
	nBlobs  int

	scopeMu sync.Mutex
	scopes  map[*snapScope]struct{}

	// writing counts the snapshots of a batch still writing their streams;
	// while some are, sync lets packs fill instead of sealing them early.
	writing atomic.Int64
}

func (r *Repository) newSession(ctx context.Context) *session {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{r: r, ctx: ctx, cancel: cancel, scopes: map[*snapScope]struct{}{},
		inflight: map[crypt.ID]uint64{}, uploads: make(chan upload, 1), free: make(chan []byte, uploaders+1),
		upPending: map[uint64]struct{}{}}
	s.upCond = sync.NewCond(&s.upMu)
	for range uploaders {
		s.upWG.Add(1)
		go s.uploader()
	}
	return s
}

// abort stops a session that will write nothing.
func (s *session) abort() {
	s.fail(context.Canceled)
	_ = s.finish()
}

// fail records the first error and stops the session.
func (s *session) fail(err error) {
	s.cancel(err)
	s.upMu.Lock()
	s.upCond.Broadcast()
	s.upMu.Unlock()
}

// err returns the first recorded error.
func (s *session) err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// claim reports whether id is new to the repository and to this session,
// and if so reserves it, so exactly one caller stores it.
func (s *session) claim(id crypt.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.inflight[id]; busy || s.r.idx.Has(id) {
		return false
	}
	s.claims++
	s.inflight[id] = s.claims
	return true
}

// claimMark returns the number of the latest claim: a stream that ended
// depends on no claim made after it.
func (s *session) claimMark() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims
}

// has reports whether the repository stores blob id.
func (s *session) has(id crypt.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.idx.Has(id)
}

// indexedUpTo reports whether every blob claimed up to claim number mark
// is in an index file.
func (s *session) indexedUpTo(mark uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.inflight {
		if n <= mark {
			return false
		}
	}
	return true
}

// saveBlob stores plain unless the repository or this session has it.
func (s *session) saveBlob(sc *snapScope, t pack.BlobType, id crypt.ID, plain []byte) error {
	if !s.claim(id) {
		return nil
	}
	enc, data := s.r.encodeBlob(nil, plain)
	return s.store(sc, t, enc, id, crypt.ID{}, data, len(plain))
}

// store seals an encoded blob that claim reserved into the open pack of its
// type, and hands the pack to the uploaders when it is full.
func (s *session) store(sc *snapScope, t pack.BlobType, enc pack.Encoding, id, base crypt.ID, data []byte, rawLen int) error {
	s.packMu[t].Lock()
	defer s.packMu[t].Unlock()
	pw := s.packers[t]
	if pw == nil {
		// Data packs are allocated at full size (the last blob may overshoot
		// by one chunk) and recycled; tree packs are small and grow.
		var buf []byte
		if t == pack.DataBlob {
			select {
			case buf = <-s.free:
			default:
				buf = make([]byte, 0, int(s.r.cfg.PackSize)+int(s.r.cfg.Chunker.MaxSize)+64<<10)
			}
		}
		var err error
		if pw, err = pack.NewWriterBuffer(s.r.key, buf); err != nil {
			return err
		}
		s.packers[t] = pw
	}
	e, err := pw.Add(t, enc, id, base, data, rawLen)
	if err != nil {
		return err
	}
	sc.blobs.Add(1)
	sc.bytes.Add(int64(e.Length))
	sc.progress.addAdded(int64(e.Length))
	if enc == pack.DeltaZstd {
		sc.deltas.Add(1)
	}
	if int64(pw.Size()) < s.r.cfg.PackSize {
		return nil
	}
	s.packers[t] = nil
	return s.send(pw)
}

// upload is a pack on its way to the uploaders.
type upload struct {
	pw     *pack.Writer
	ticket uint64
}

// send hands a pack to the uploaders.
func (s *session) send(pw *pack.Writer) error {
	s.upMu.Lock()
	s.upTickets++
	u := upload{pw: pw, ticket: s.upTickets}
	s.upPending[u.ticket] = struct{}{}
	s.upMu.Unlock()
	select {
	case s.uploads <- u:
		return nil
	case <-s.ctx.Done():
		s.uploaded(u.ticket)
		return s.err()
	}
}

// uploaded marks the pack with ticket stored (or given up).
func (s *session) uploaded(ticket uint64) {
	s.upMu.Lock()
	delete(s.upPending, ticket)
	s.upCond.Broadcast()
	s.upMu.Unlock()
}

// waitUploads waits until every pack sent up to ticket is stored.
func (s *session) waitUploads(ticket uint64) {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	for s.ctx.Err() == nil {
		busy := false
		for t := range s.upPending {
			if t <= ticket {
				busy = true
				break
			}
		}
		if !busy {
			return
		}
		s.upCond.Wait()
	}
}

func (s *session) uploader() {
	defer s.upWG.Done()
	for u := range s.uploads {
		if s.ctx.Err() == nil {
			if err := s.upload(u.pw); err != nil {
				s.fail(err)
			}
		}
		s.uploaded(u.ticket)
	}
}

// upload finalizes and stores one pack and queues its blobs for the
// session's index. The blobs stay in the inflight set, not in the
// repository index, until an index file lists them: if the session fails
// before that, no later snapshot of this process may deduplicate against them.
func (s *session) upload(pw *pack.Writer) error {
	data, entries, err := pw.Finalize()
	if err != nil {
		return err
	}
	id := crypt.Hash(data)
	h := store.Handle{Type: store.PackFile, Name: id.String()}
	if err := s.r.be.Put(s.ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("save pack %s: %w", id.Short(), err)
	}
	s.cachePack(id, data, entries)
	if int64(cap(data)) > s.r.cfg.PackSize {
		select {
		case s.free <- data[:0]:
		default:
		}
	}

	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	s.pending.Packs = append(s.pending.Packs, index.PackBlobs{ID: id, Salt: pw.Salt(), Size: int64(len(data)), Blobs: entries})
	s.nBlobs += len(entries)
	if s.nBlobs >= indexFlushBlobs {
		return s.flushIndexLocked()
	}
	return nil
}

// cachePack puts the stored data blobs of a pack into the base caches of
// the snapshots that use them: for each, the span of the pack from the
// first to the last blob it uses.
func (s *session) cachePack(id crypt.ID, data []byte, entries []pack.Entry) {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	for sc := range s.scopes {
		if sc.cache == nil {
			continue
		}
		start, end := int64(-1), int64(0)
		for _, e := range entries {
			if e.Type == pack.DataBlob && sc.uses(e.ID) {
				if start < 0 {
					start = e.Offset
				}
				start, end = min(start, e.Offset), max(end, e.Offset+e.Length)
			}
		}
		if start >= 0 {
			_ = sc.cache.Put(id, start, data[start:end])
		}
	}
}

// flushIndexLocked writes the pending index entries as one index file and
// then makes them visible in the repository index.
func (s *session) flushIndexLocked() error {
	if len(s.pending.Packs) == 0 {
		return nil
	}
	plain := index.Encode(&s.pending)
	sealed, err := s.r.sealFile("index", plain, true)
	if err != nil {
		return err
	}
	id := crypt.Hash(sealed)
	h := store.Handle{Type: store.IndexFile, Name: id.String()}
	if err := s.r.be.Put(s.ctx, h, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		return fmt.Errorf("save index %s: %w", id.Short(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending.Packs {
		if err := s.r.idx.AddPack(index.Pack{ID: p.ID, Salt: p.Salt, Size: p.Size}, p.Blobs); err != nil {
			return err
		}
		for _, e := range p.Blobs {
			delete(s.inflight, e.ID)
		}
	}
	s.pending, s.nBlobs = index.File{}, 0
	return nil
}

// sendOpen hands the partly filled packs to the uploaders.
func (s *session) sendOpen() error {
	for t := range s.packers {
		s.packMu[t].Lock()
		pw := s.packers[t]
		if pw != nil && pw.Count() > 0 {
			s.packers[t] = nil
		} else {
			pw = nil
		}
		s.packMu[t].Unlock()
		if pw != nil {
			if err := s.send(pw); err != nil {
				return err
			}
		}
	}
	return nil
}

// sync returns once every blob claimed up to claim number mark is stored
// and listed in an index file, so a snapshot that depends on no later
// claim may be saved while other streams of the session go on. While other
// snapshots are still writing, the open packs keep filling and sync waits
// for them to be sent; once none is, it seals them. It writes the pending
// index whenever uploads finished.
func (s *session) sync(mark uint64) error {
	for {
		if err := s.err(); err != nil {
			return err
		}
		if s.indexedUpTo(mark) {
			return nil
		}
		if s.writing.Load() == 0 {
			if err := s.sendOpen(); err != nil {
				return err
			}
		}
		s.upMu.Lock()
		ticket := s.upTickets
		s.upMu.Unlock()
		s.waitUploads(ticket)
		if err := s.err(); err != nil {
			return err
		}
		s.idxMu.Lock()
		err := s.flushIndexLocked()
		s.idxMu.Unlock()
		if err != nil {
			s.fail(err)
			return err
		}
		if s.indexedUpTo(mark) {
			return nil
		}
		// A blob this snapshot uses is in a pack still filling, or another
		// stream claimed it and is still encoding it.
		select {
		case <-time.After(syncPoll):
		case <-s.ctx.Done():
		}
	}
}

// finish stores the partly filled packs, waits for every upload and writes
// the last index file. It must be called once, after all streams closed.
func (s *session) finish() error {
	if s.err() == nil {
		_ = s.sendOpen()
	}
	close(s.uploads)
	s.upWG.Wait()
	if err := s.err(); err != nil {
		return err
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if err := s.flushIndexLocked(); err != nil {
		s.fail(err)
		return err
	}
	return nil
}
