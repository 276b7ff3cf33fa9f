package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/delta"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

// encodeBlob compresses plain into dst when that makes it smaller.
func (r *Repository) encodeBlob(dst, plain []byte) (pack.Encoding, []byte) {
	if len(plain) >= 64 {
		out := r.enc.EncodeAll(plain, dst[:0])
		if len(out) < len(plain) {
			return pack.Zstd, out
		}
	}
	return pack.Raw, plain
}

// openBlob authenticates and decodes one sealed blob read from loc. The
// plaintext is appended to dst[:0]; sealed is decrypted in place. base is
// the decoded base blob when loc is a delta. The caller verifies the result.
func (r *Repository) openBlob(loc index.Location, sealed, base, dst []byte) ([]byte, error) {
	fail := func(err error) error { return &BlobError{Pack: loc.Pack.ID, Blob: loc.Entry.ID, Err: err} }
	s, err := r.key.Subkey(loc.Pack.Salt)
	if err != nil {
		return nil, fail(err)
	}
	e := loc.Entry
	if e.RawLength > pack.MaxBlobSize {
		return nil, fail(corrupt(nil, "raw length %d", e.RawLength))
	}
	stored, err := pack.OpenBlob(s, e, sealed[:0], sealed)
	if err != nil {
		return nil, fail(corrupt(err, "decrypt"))
	}
	var plain []byte
	switch e.Enc {
	case pack.Raw:
		plain = append(dst[:0], stored...)
	case pack.Zstd:
		if int64(cap(dst)) < e.RawLength {
			dst = make([]byte, 0, e.RawLength)
		}
		plain, err = r.blobDec.DecodeAll(stored, dst[:0])
		if err != nil {
			return nil, fail(corrupt(err, "decompress"))
		}
	case pack.DeltaZstd:
		pb := r.progBufs.Get().(*[]byte)
		defer r.progBufs.Put(pb)
		*pb, err = r.blobDec.DecodeAll(stored, (*pb)[:0])
		if err != nil {
			return nil, fail(corrupt(err, "decompress delta"))
		}
		plain, err = delta.Decode(dst, base, *pb, int(e.RawLength))
		if err != nil {
			return nil, fail(corrupt(err, "apply delta to base %s", e.Base.Short()))
		}
	default:
		return nil, fail(corrupt(nil, "encoding %s is not supported by this version of bk", e.Enc))
	}
	if int64(len(plain)) != e.RawLength {
		return nil, fail(corrupt(nil, "decoded %d bytes, index says %d", len(plain), e.RawLength))
	}
	return plain, nil
}

// LoadBlob reads, decrypts and verifies one blob, decoding delta chains. The
// plaintext is appended to buf[:0], which may be nil.
func (r *Repository) LoadBlob(ctx context.Context, t pack.BlobType, id crypt.ID, buf []byte) ([]byte, error) {
	plain, _, err := r.loadBlob(ctx, t, id, buf, nil)
	return plain, err
}

// loadBlob is LoadBlob with a reusable scratch buffer for the sealed bytes;
// it returns the (possibly grown) scratch buffer.
//
// A delta chain is decoded verifying only the final plaintext against its
// ID: every link is authenticated by GCM, and any wrong link makes the
// final hash differ (or a delta not apply). Only then is the chain decoded
// again with every link verified, to name the blob that is wrong.
func (r *Repository) loadBlob(ctx context.Context, t pack.BlobType, id crypt.ID, buf, scratch []byte) ([]byte, []byte, error) {
	return r.loadBlobFrom(ctx, nil, t, id, buf, scratch)
}

// loadBlobFrom is loadBlob that looks in src (which may be nil) before
// fetching sealed blobs from the repository.
func (r *Repository) loadBlobFrom(ctx context.Context, src sealedSource, t pack.BlobType, id crypt.ID, buf, scratch []byte) ([]byte, []byte, error) {
	plain, scratch, err := r.loadChain(ctx, src, t, id, buf, scratch, 0, false)
	if errors.Is(err, errChainMismatch) {
		plain, scratch, err = r.loadChain(ctx, nil, t, id, buf, scratch, 0, true)
	}
	return plain, scratch, err
}

// errChainMismatch marks a delta chain whose final plaintext did not verify.
var errChainMismatch = errors.New("delta chain decoded to the wrong content")

// maxChainDecode caps the delta links a reader follows, whatever the config
// says, so a corrupt index cannot send it around a cycle.
const maxChainDecode = 64

func (r *Repository) loadChain(ctx context.Context, src sealedSource, t pack.BlobType, id crypt.ID, buf, scratch []byte, depth int, verifyAll bool) ([]byte, []byte, error) {
	if r.idx == nil {
		return nil, scratch, errors.New("load blob: the index is not loaded (call LoadIndex)")
	}
	loc, ok := r.idx.Lookup(id)
	if !ok {
		return nil, scratch, corrupt(nil, "%s blob %s is not in the index", t, id)
	}
	fail := func(err error) error { return &BlobError{Pack: loc.Pack.ID, Blob: id, Err: err} }
	if loc.Entry.Type != t {
		return nil, scratch, fail(corrupt(nil, "is a %s blob, want %s", loc.Entry.Type, t))
	}
	var base []byte
	if loc.Entry.Enc == pack.DeltaZstd {
		if depth >= maxChainDecode {
			return nil, scratch, fail(corrupt(nil, "delta chain longer than %d", maxChainDecode))
		}
		bp := r.baseBufs.Get().(*[]byte)
		defer r.baseBufs.Put(bp)
		var err error
		base, scratch, err = r.loadChain(ctx, src, pack.DataBlob, loc.Entry.Base, (*bp)[:0], scratch, depth+1, verifyAll)
		if err != nil {
			if errors.Is(err, errChainMismatch) {
				return nil, scratch, err
			}
			if be := (*BlobError)(nil); !errors.As(err, &be) {
				// The base is not indexed: name the delta that needs it.
				return nil, scratch, fail(err)
			}
			return nil, scratch, fmt.Errorf("base of delta blob %s in pack %s: %w", id.Short(), loc.Pack.ID.Short(), err)
		}
		*bp = base[:0]
	}
	h := store.Handle{Type: store.PackFile, Name: loc.Pack.ID.String()}
	n := int(loc.Entry.Length)
	if cap(scratch) < n {
		scratch = make([]byte, n)
	}
	sealed := scratch[:n]
	var err error
	if b, ok := lookSealed(src, id, loc.Pack.ID, loc.Entry.Offset, loc.Entry.Length); ok {
		copy(sealed, b)
	} else {
		err = r.be.Get(ctx, h, loc.Entry.Offset, loc.Entry.Length, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, sealed)
			return err
		})
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The index places the blob inside the pack, so a pack too short
			// to hold it is damaged, not merely unreachable.
			err = corrupt(err, "pack is shorter than the index says")
		}
		return nil, scratch, fail(fmt.Errorf("read: %w", err))
	}
	plain, err := r.openBlob(loc, sealed, base, buf)
	if err != nil {
		if !verifyAll && errors.Is(err, delta.ErrCorrupt) {
			// The base was not verified: it, not this delta, may be wrong.
			return nil, scratch, errChainMismatch
		}
		return nil, scratch, err
	}
	if depth == 0 || verifyAll {
		if got := r.key.BlobID(plain); got != id {
			if depth == 0 && !verifyAll && loc.Entry.Enc == pack.DeltaZstd {
				return nil, scratch, errChainMismatch
			}
			return nil, scratch, fail(corrupt(nil, "content hashes to %s", got.Short()))
		}
	}
	return plain, scratch, nil
}

// lookSealed asks src, which may be nil, for the sealed bytes of a blob.
func lookSealed(src sealedSource, id, p crypt.ID, off, length int64) ([]byte, bool) {
	if src == nil {
		return nil, false
	}
	return src.Get(id, p, off, length)
}
