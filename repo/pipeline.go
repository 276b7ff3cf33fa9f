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
	hash   crypt.ID
}

// chunkJob carries one chunk through the pipeline.
type chunkJob struct {
	buf  *[]byte
	data []byte
	id   crypt.ID
	head uint64
	base crypt.ID
	alt  crypt.ID // a second base candidate: the base of the chunk before
	done chan struct{}
}

// writeStream runs the pipeline:
//
//  1. this goroutine reads and chunks the stream;
//  2. hash workers compute each chunk's ID and head fingerprint;
//  3. the collector takes chunks in stream order: it hashes the stream,
//     builds the tree, decides which chunks are new and picks their delta
//     bases (which needs the order);
//  4. encode workers delta-code or compress the new chunks and seal them
//     into packs, which the session's uploaders store.
//
// Every stage is bounded, so memory does not grow with the stream.
func (s *session) writeStream(rd io.Reader, allowEmpty bool) (streamStats, error) {
	r := s.r
	workers := r.workers
	hashJobs := make(chan *chunkJob, workers)
	encJobs := make(chan *chunkJob, workers)
	order := make(chan *chunkJob, 2*workers+2)
	bufs := sync.Pool{New: func() any { b := make([]byte, 0, r.chunkBufSize()); return &b }}
	release := func(j *chunkJob) {
		*j.buf = j.data[:0]
		bufs.Put(j.buf)
	}

	var hashWG, encWG sync.WaitGroup
	for range workers {
		hashWG.Add(1)
		go func() {
			defer hashWG.Done()
			for j := range hashJobs {
				if s.ctx.Err() == nil {
					j.id = r.key.BlobID(j.data)
					j.head = r.headOf(j.data)
				}
				close(j.done)
			}
		}()
		encWG.Add(1)
		go func() {
			defer encWG.Done()
			w := &deltaWork{}
			for j := range encJobs {
				if s.ctx.Err() != nil {
					continue
				}
				enc, base, data := s.encodeNew(w, j.data, j.base, j.alt)
				if err := s.store(pack.DataBlob, enc, j.id, base, data, len(j.data)); err != nil {
					s.fail(err)
				}
				release(j)
			}
		}()
	}

	var st streamStats
	collected := make(chan error, 1)
	go func() {
		defer close(encJobs)
		hasher := r.key.NewIDHasher()
		tb := &treeBuilder{save: func(plain []byte) (crypt.ID, error) {
			id := r.key.BlobID(plain)
			return id, s.saveBlob(pack.TreeBlob, id, plain)
		}}
		var err error
		var off int64
		var lastBase crypt.ID
		for j := range order {
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
			size := int64(len(j.data))
			hasher.Write(j.data)
			st.chunks++
			if s.current != nil {
				s.current[j.id] = struct{}{}
			}
			if s.claim(j.id) {
				if s.prev != nil {
					j.base = s.prev.base(off, size, j.head)
					if lastBase != j.base {
						j.alt = lastBase
					}
					lastBase = j.base
				}
				select {
				case encJobs <- j:
				case <-s.ctx.Done():
					err = s.err()
				}
			} else {
				if s.prev != nil {
					s.prev.seen(j.id, off, size)
				}
				release(j)
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
			st.root, err = tb.finish()
			copy(st.hash[:], hasher.Sum(nil))
		}
		collected <- err
	}()

	sp := chunk.NewSplitter(rd, r.cfg.Chunker)
	var readErr error
	for s.ctx.Err() == nil {
		bp := bufs.Get().(*[]byte)
		data, err := sp.Next((*bp)[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read stream: %w", err)
			break
		}
		*bp = data[:0]
		st.size += int64(len(data))
		s.progress.addBytes(int64(len(data)))
		j := &chunkJob{buf: bp, data: data, done: make(chan struct{})}
		order <- j // the collector drains order even after a failure
		select {
		case hashJobs <- j:
		case <-s.ctx.Done():
		}
	}
	if readErr == nil && st.size == 0 && !allowEmpty && s.ctx.Err() == nil {
		readErr = fmt.Errorf("the stream has 0 bytes (pass --allow-empty to store an empty stream): %w", ErrEmpty)
	}
	if readErr != nil {
		s.fail(readErr)
	}
	close(hashJobs)
	close(order)
	hashWG.Wait()
	err := <-collected
	encWG.Wait()
	if err != nil {
		return st, err
	}
	if err := s.err(); err != nil {
		return st, err
	}
	return st, nil
}
