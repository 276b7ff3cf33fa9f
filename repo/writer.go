package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// SnapshotStream stores everything rd yields as one stream and records a
// snapshot. If rd fails (returns an error other than io.EOF), or the stream is
// empty and not allowed, nothing is recorded and the error is returned. The
// caller should hold a shared lock.
func (r *Repository) SnapshotStream(ctx context.Context, rd io.Reader, opts SnapshotOptions) (*Snapshot, error) {
	if opts.Name == "" {
		return nil, errors.New("snapshot: a name is required")
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	began := time.Now()
	start := opts.Time
	if start.IsZero() {
		start = began
	}
	h, err := r.sourceHistory(ctx, opts.Name, opts.Host)
	if err != nil {
		return nil, err
	}
	lastUsable := h.lastUsable
	s := r.newSession(ctx, opts.Progress)
	var parent *crypt.ID
	var prev *prevStream
	if r.cfg.Delta.Enabled && !opts.NoDelta && lastUsable != nil {
		prev, err = r.previousStream(ctx, lastUsable.ID, lastUsable.Tree)
		if err != nil {
			s.abort()
			return nil, err
		}
		if prev != nil {
			parent = &prev.snapshot
		}
	}
	if err := s.openCache(opts.Name, opts.Host); err != nil {
		s.abort()
		return nil, err
	}
	st, hash, err := s.writeStream(rd, prev, opts.AllowEmpty)
	if ferr := s.finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Time: start.UTC(), Host: opts.Host, Username: opts.Username, Name: opts.Name,
		Duration: time.Since(began).Seconds(), Tags: opts.Tags, Kind: KindStream, Tree: st.root, Size: st.size, StreamHash: hash,
		Chunks: st.chunks, AddedBytes: s.addedBytes.Load(), AddedBlobs: s.addedBlobs.Load(),
		AddedDeltas: s.addedDeltas.Load(), DeltaBase: parent, Command: opts.Command, Program: opts.Program}
	if err := r.saveNew(ctx, snap, h, opts); err != nil {
		return nil, err
	}
	s.retainCache()
	return snap, nil
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

// openCache opens the base cache of the source the session writes, for
// repositories that have one (not local ones).
func (s *session) openCache(name, host string) error {
	if s.r.opts.CacheDir == "" {
		return nil
	}
	var err error
	if s.cache, err = s.r.baseCache(name, host); err != nil {
		return err
	}
	s.current = map[crypt.ID]struct{}{}
	return nil
}

// noteCurrent records that the snapshot being written uses chunk id, so the
// base cache keeps it.
func (s *session) noteCurrent(id crypt.ID) {
	if s.cache == nil {
		return
	}
	s.curMu.Lock()
	s.current[id] = struct{}{}
	s.curMu.Unlock()
}

// retainCache trims the base cache to exactly this snapshot's chunks:
// tomorrow's bases. The cache is an optimisation; failing to trim it does
// not fail the snapshot.
func (s *session) retainCache() {
	if s.cache == nil {
		return
	}
	s.curMu.Lock()
	defer s.curMu.Unlock()
	_ = s.cache.Retain(func(id crypt.ID) bool { _, ok := s.current[id]; return ok })
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

// session is one write session: it deduplicates blobs, fills packs and
// uploads them, and writes the index files for what it stored.
type session struct {
	r        *Repository
	ctx      context.Context
	cancel   context.CancelCauseFunc
	cache    *blobcache.Cache
	curMu    sync.Mutex
	current  map[crypt.ID]struct{} // chunks of this snapshot, when cache is set
	progress *Progress

	mu       sync.Mutex // guards inflight and its consistency with r.idx
	inflight map[crypt.ID]struct{}

	packMu  [3]sync.Mutex // per blob type
	packers [3]*pack.Writer

	uploads chan *pack.Writer
	upWG    sync.WaitGroup
	free    chan []byte // buffers of stored data packs, for reuse

	idxMu   sync.Mutex
	pending index.File
	nBlobs  int

	addedBytes  atomic.Int64
	addedBlobs  atomic.Int64
	addedDeltas atomic.Int64
}

func (r *Repository) newSession(ctx context.Context, p *Progress) *session {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{r: r, ctx: ctx, cancel: cancel, progress: p,
		inflight: map[crypt.ID]struct{}{}, uploads: make(chan *pack.Writer, 1), free: make(chan []byte, uploaders+1)}
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
func (s *session) fail(err error) { s.cancel(err) }

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
	s.inflight[id] = struct{}{}
	return true
}

// saveBlob stores plain unless the repository or this session has it.
func (s *session) saveBlob(t pack.BlobType, id crypt.ID, plain []byte) error {
	if !s.claim(id) {
		return nil
	}
	enc, data := s.r.encodeBlob(nil, plain)
	return s.store(t, enc, id, crypt.ID{}, data, len(plain))
}

// store seals an encoded blob that claim reserved into the open pack of its
// type, and hands the pack to the uploaders when it is full.
func (s *session) store(t pack.BlobType, enc pack.Encoding, id, base crypt.ID, data []byte, rawLen int) error {
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
	if _, err := pw.Add(t, enc, id, base, data, rawLen); err != nil {
		return err
	}
	s.addedBlobs.Add(1)
	if enc == pack.DeltaZstd {
		s.addedDeltas.Add(1)
	}
	if int64(pw.Size()) < s.r.cfg.PackSize {
		return nil
	}
	s.packers[t] = nil
	return s.send(pw)
}

// send hands a full pack to the uploaders.
func (s *session) send(pw *pack.Writer) error {
	select {
	case s.uploads <- pw:
		return nil
	case <-s.ctx.Done():
		return s.err()
	}
}

func (s *session) uploader() {
	defer s.upWG.Done()
	for pw := range s.uploads {
		if s.ctx.Err() != nil {
			continue // drain after a failure
		}
		if err := s.upload(pw); err != nil {
			s.fail(err)
		}
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
	s.addedBytes.Add(int64(len(data)))
	s.progress.addAdded(int64(len(data)))
	if s.cache != nil {
		for _, e := range entries {
			if e.Type == pack.DataBlob {
				_ = s.cache.Put(e.ID, id, e.Offset, data[e.Offset:e.Offset+e.Length])
			}
		}
	}
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
	s.addedBytes.Add(int64(len(sealed)))
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

// finish stores the partly filled packs, waits for every upload and writes
// the last index file. It must be called once, after all saveBlob calls.
func (s *session) finish() error {
	if s.err() == nil {
		for t := range s.packers {
			if pw := s.packers[t]; pw != nil && pw.Count() > 0 {
				s.packers[t] = nil
				if err := s.send(pw); err != nil {
					break
				}
			}
		}
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

// has reports whether the repository stores blob id.
func (s *session) has(id crypt.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.idx.Has(id)
}
