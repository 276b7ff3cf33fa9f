package repo

import (
	"fmt"
	"io"
	"sync"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/pack"
)

// chunkBufSize is the initial capacity of chunk buffers: twice the average
// chunk, so most chunks fit and rare large ones grow their buffer.
func (r *Repository) chunkBufSize() int {
	return min(2<<r.cfg.Chunker.AverageBits, int(r.cfg.Chunker.MaxSize))
}

// streamStats is what writing one stream produced.
type streamStats struct {
	root   crypt.ID
	size   int64
	chunks int64
}

// partStats describes one part of a stream written by streamWriter.write:
// the whole stream of a stream snapshot, or one file of a tree snapshot.
type partStats struct {
	size   int64
	chunks int64
	hash   crypt.ID // keyed BLAKE3 of the part's bytes
}

// chunkJob carries one chunk, a known chunk or a part marker through the
// pipeline.
type chunkJob struct {
	buf  *[]byte
	data []byte
	id   crypt.ID
	head uint64
	base crypt.ID
	alt  crypt.ID // a second base candidate: the base of the chunk before
	done chan struct{}

	known bool           // a chunk already stored, of size bytes; data is nil
	size  int64          // the size of a known chunk
	mark  chan partStats // non-nil: the end of a part
}

// streamWriter writes one stream of chunks through a session. Parts are
// appended with write (read and chunked; each part ends on a chunk
// boundary) or appendKnown (chunks already stored, not read again).
// Several streamWriters may share one session. The pipeline:
//
//  1. the caller's goroutine reads and chunks each part;
//  2. hash workers compute each chunk's ID and head fingerprint;
//  3. the collector takes chunks in stream order: it hashes the part,
//     builds the tree, decides which chunks are new and picks their delta
//     bases (which needs the order);
//  4. encode workers delta-code or compress the new chunks and seal them
//     into packs, which the session's uploaders store.
//
// Every stage is bounded, so memory does not grow with the stream.
type streamWriter struct {
	s    *session
	sc   *snapScope
	prev *prevStream // the previous version of this stream, for delta bases

	hashJobs, encJobs, order chan *chunkJob
	bufs                     *bufList
	hashWG, encWG            sync.WaitGroup
	collected                chan error
	st                       streamStats
	closed                   bool
}

// newStream starts the pipeline of one stream of the snapshot sc. prev
// may be nil.
func (s *session) newStream(sc *snapScope, prev *prevStream) *streamWriter {
	r := s.r
	workers := r.workers
	w := &streamWriter{s: s, sc: sc, prev: prev,
		hashJobs: make(chan *chunkJob, workers), encJobs: make(chan *chunkJob, workers),
		order: make(chan *chunkJob, 2*workers+2), collected: make(chan error, 1)}
	// Chunks in flight: the order queue, the job queues and the workers.
	w.bufs = newBufList(cap(w.order)+4*workers+2, int(r.cfg.Chunker.MaxSize))
	for range workers {
		w.hashWG.Add(1)
		go w.hashWorker()
		w.encWG.Add(1)
		go w.encodeWorker()
	}
	go w.collect()
	return w
}

func (w *streamWriter) release(j *chunkJob) {
	w.bufs.put(j.buf, j.data)
}

func (w *streamWriter) hashWorker() {
	defer w.hashWG.Done()
	r := w.s.r
	for j := range w.hashJobs {
		if w.s.ctx.Err() == nil {
			j.id = r.key.BlobID(j.data)
			j.head = r.headOf(j.data)
		}
		close(j.done)
	}
}

func (w *streamWriter) encodeWorker() {
	defer w.encWG.Done()
	s := w.s
	dw := &deltaWork{}
	for j := range w.encJobs {
		if s.ctx.Err() != nil {
			continue
		}
		enc, base, data := s.encodeNew(dw, w.sc.cache, j.data, j.base, j.alt)
		if err := s.store(w.sc, pack.DataBlob, enc, j.id, base, data, len(j.data)); err != nil {
			s.fail(err)
		}
		w.release(j)
	}
}

// collect runs the ordered stage until order is closed.
func (w *streamWriter) collect() {
	s, r := w.s, w.s.r
	defer close(w.encJobs)
	hasher := r.key.NewIDHasher()
	var part partStats
	tb := &treeBuilder{save: func(plain []byte) (crypt.ID, error) {
		id := r.key.BlobID(plain)
		return id, s.saveBlob(w.sc, pack.TreeBlob, id, plain)
	}}
	var err error
	var off int64
	var lastBase crypt.ID
	for j := range w.order {
		if j.mark != nil {
			if err == nil {
				copy(part.hash[:], hasher.Sum(nil))
				j.mark <- part
			}
			close(j.mark)
			hasher.Reset()
			part = partStats{}
			continue
		}
		if err != nil {
			continue // drain after a failure
		}
		select {
		case <-j.done:
		case <-s.ctx.Done():
			err = s.err()
			continue
		}
		if err = s.ctx.Err(); err != nil {
			err = s.err()
			continue
		}
		size := j.size
		if !j.known {
			size = int64(len(j.data))
			hasher.Write(j.data)
		}
		part.size += size
		part.chunks++
		w.st.chunks++
		w.st.size += size
		w.sc.noteCurrent(j.id)
		if !j.known && s.claim(j.id) {
			if w.prev != nil {
				j.base = w.prev.base(off, size, j.head)
				if lastBase != j.base {
					j.alt = lastBase
				}
				lastBase = j.base
			}
			select {
			case w.encJobs <- j:
			case <-s.ctx.Done():
				err = s.err()
			}
		} else {
			if w.prev != nil {
				w.prev.seen(j.id, off, size)
			}
			if !j.known {
				w.release(j)
			}
		}
		off += size
		if err == nil {
			err = tb.add(0, TreeEntry{ID: j.id, Size: size, Head: j.head})
		}
		if err != nil {
			s.fail(err)
		}
	}
	if err == nil && s.ctx.Err() == nil {
		w.st.root, err = tb.finish()
	}
	w.collected <- err
}

// write appends everything rd yields as one part of the stream, ending on a
// chunk boundary. It returns once rd is read; the part's statistics arrive
// on the returned channel when the collector has hashed it (the channel is
// closed without a value if the session fails first). An error reading rd
// ends the stream's input but not the session.
func (w *streamWriter) write(rd io.Reader) (<-chan partStats, error) {
	s := w.s
	sp := chunk.NewSplitter(rd, s.r.cfg.Chunker)
	for s.ctx.Err() == nil {
		bp := w.bufs.get()
		data, err := sp.Next((*bp)[:0])
		if err == io.EOF {
			w.bufs.put(bp, data)
			break
		}
		if err != nil {
			// The source failed: this stream ends here, the session goes on
			// (the chunks already claimed are still stored).
			w.bufs.put(bp, data)
			return nil, fmt.Errorf("read stream: %w", err)
		}
		*bp = data[:0]
		w.sc.progress.addBytes(int64(len(data)))
		j := &chunkJob{buf: bp, data: data, done: make(chan struct{})}
		w.order <- j // the collector drains order even after a failure
		select {
		case w.hashJobs <- j:
		case <-s.ctx.Done():
		}
	}
	if err := s.err(); err != nil {
		return nil, err
	}
	mark := make(chan partStats, 1)
	w.order <- &chunkJob{mark: mark}
	return mark, nil
}

// appendKnown appends, as one part, chunks the repository stores already,
// without reading them; the caller knows their content. They take part in
// delta alignment.
func (w *streamWriter) appendKnown(entries []TreeEntry) {
	closed := make(chan struct{})
	close(closed)
	for _, e := range entries {
		w.sc.progress.addBytes(e.Size)
		w.order <- &chunkJob{id: e.ID, head: e.Head, known: true, size: e.Size, done: closed}
	}
	w.order <- &chunkJob{mark: make(chan partStats, 1)}
}

// close ends the stream and returns its tree root and totals. It must be
// called once, after the last write.
func (w *streamWriter) close() (streamStats, error) {
	if w.closed {
		return w.st, fmt.Errorf("stream closed twice")
	}
	w.closed = true
	close(w.hashJobs)
	close(w.order)
	w.hashWG.Wait()
	err := <-w.collected
	w.encWG.Wait()
	if err == nil {
		err = w.s.err()
	}
	return w.st, err
}

// writeStream stores everything rd yields as one stream of snapshot sc
// and returns its tree root, size, chunk count and keyed hash.
func (s *session) writeStream(sc *snapScope, rd io.Reader, prev *prevStream, allowEmpty bool) (streamStats, crypt.ID, error) {
	w := s.newStream(sc, prev)
	mark, err := w.write(rd)
	var part partStats
	if err == nil {
		var ok bool
		if part, ok = <-mark; !ok {
			err = s.err()
		}
	}
	if err == nil && part.size == 0 && !allowEmpty {
		err = fmt.Errorf("the stream has 0 bytes (pass --allow-empty to store an empty stream): %w", ErrEmpty)
	}
	st, cerr := w.close()
	if err == nil {
		err = cerr
	}
	return st, part.hash, err
}
