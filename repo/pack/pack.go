package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/internal/binfmt"
)

// Format constants. They are part of the on-disk format; they must not change.
const (
	Magic        = "BKPK"
	Version      = 1
	PreambleSize = 4 + 1 + crypt.SaltSize // magic, version, salt
	TrailerSize  = 4                      // uint32 LE length of the sealed header
	// MaxHeaderSize caps the sealed header a reader accepts.
	MaxHeaderSize = 16 << 20
	// MaxCount caps the number of blobs in one pack.
	MaxCount = 1 << 20
	// MaxBlobSize caps the sealed length of one blob.
	MaxBlobSize = 1 << 30

	headerAD = "bk pack header v1"
	blobAD   = "bk blob v1"
)

// ErrCorrupt marks a pack whose bytes do not follow the format.
var ErrCorrupt = errors.New("corrupt pack")

// BlobType says what a blob holds. The values are part of the format.
type BlobType uint8

// Blob types.
const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is a known blob type.
func (t BlobType) Valid() bool { return t == DataBlob || t == TreeBlob }

// Encoding says how a blob's plaintext is stored. The values are part of the format.
type Encoding uint8

// Blob encodings.
const (
	Raw       Encoding = 0
	Zstd      Encoding = 1
	DeltaZstd Encoding = 2 // zstd with the base blob as raw dictionary
)

func (e Encoding) String() string {
	switch e {
	case Raw:
		return "raw"
	case Zstd:
		return "zstd"
	case DeltaZstd:
		return "delta-zstd"
	}
	return fmt.Sprintf("enc(%d)", uint8(e))
}

// Valid reports whether e is a known encoding.
func (e Encoding) Valid() bool { return e <= DeltaZstd }

// Entry describes one blob in a pack.
type Entry struct {
	Type      BlobType
	Enc       Encoding
	ID        crypt.ID
	Base      crypt.ID // the base blob when Enc is DeltaZstd
	Offset    int64    // byte offset of the sealed blob in the pack
	Length    int64    // sealed length
	RawLength int64    // decoded plaintext length
}

// AD returns the associated data that binds a sealed blob to its identity.
func AD(t BlobType, enc Encoding, id, base crypt.ID) []byte {
	ad := make([]byte, 0, len(blobAD)+2+2*crypt.IDSize)
	ad = append(ad, blobAD...)
	ad = append(ad, byte(t), byte(enc))
	ad = append(ad, id[:]...)
	if enc == DeltaZstd {
		ad = append(ad, base[:]...)
	}
	return ad
}

// OpenBlob authenticates and decrypts one sealed blob of a pack whose subkey
// is s. It returns the stored (encoded) plaintext appended to dst.
func OpenBlob(s *crypt.Sealer, e Entry, dst, sealed []byte) ([]byte, error) {
	if int64(len(sealed)) != e.Length {
		return nil, fmt.Errorf("blob %s: read %d bytes, want %d: %w", e.ID.Short(), len(sealed), e.Length, ErrCorrupt)
	}
	out, err := s.Open(dst, uint64(e.Offset), sealed, AD(e.Type, e.Enc, e.ID, e.Base))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", e.ID.Short(), err)
	}
	return out, nil
}

// Writer builds one pack in memory. It is not safe for concurrent use. A
// Writer that failed keeps its error and refuses further use.
type Writer struct {
	salt    [crypt.SaltSize]byte
	sealer  *crypt.Sealer
	buf     []byte
	entries []Entry
	done    bool
	err     error
}

// NewWriter starts a pack with a fresh random salt. sizeHint preallocates the buffer.
func NewWriter(mk *crypt.MasterKey, sizeHint int) (*Writer, error) {
	return NewWriterBuffer(mk, make([]byte, 0, sizeHint+PreambleSize))
}

// NewWriterBuffer starts a pack that is built in buf[:0], so the caller can
// recycle the buffer of a pack it has stored.
func NewWriterBuffer(mk *crypt.MasterKey, buf []byte) (*Writer, error) {
	salt, err := crypt.NewSalt()
	if err != nil {
		return nil, fmt.Errorf("pack salt: %w", err)
	}
	w := &Writer{salt: salt}
	s, err := mk.Subkey(w.salt)
	if err != nil {
		return nil, fmt.Errorf("pack subkey: %w", err)
	}
	w.sealer = s
	w.buf = append(buf[:0], Magic...)
	w.buf = append(w.buf, Version)
	w.buf = append(w.buf, w.salt[:]...)
	return w, nil
}

// Salt returns the pack's salt.
func (w *Writer) Salt() [crypt.SaltSize]byte { return w.salt }

// Size returns the number of bytes written so far.
func (w *Writer) Size() int { return len(w.buf) }

// Count returns the number of blobs added.
func (w *Writer) Count() int { return len(w.entries) }

// Add seals the encoded plaintext of a blob into the pack and returns its entry.
func (w *Writer) Add(t BlobType, enc Encoding, id, base crypt.ID, encoded []byte, rawLength int) (Entry, error) {
	if w.err != nil {
		return Entry{}, w.err
	}
	if w.done {
		return Entry{}, errors.New("pack writer: add after finalize")
	}
	if !t.Valid() || !enc.Valid() {
		w.err = fmt.Errorf("pack writer: invalid blob type %d or encoding %d", t, enc)
		return Entry{}, w.err
	}
	if len(w.entries) >= MaxCount {
		w.err = errors.New("pack writer: too many blobs")
		return Entry{}, w.err
	}
	e := Entry{Type: t, Enc: enc, ID: id, Offset: int64(len(w.buf)), RawLength: int64(rawLength)}
	if enc == DeltaZstd {
		e.Base = base
	}
	w.buf = w.sealer.Seal(w.buf, uint64(e.Offset), encoded, AD(t, enc, id, e.Base))
	e.Length = int64(len(w.buf)) - e.Offset
	w.entries = append(w.entries, e)
	return e, nil
}

// Finalize appends the sealed header and trailer, parses the header back to
// verify it, and returns the complete pack bytes and its entries. The writer
// cannot be used afterwards.
func (w *Writer) Finalize() ([]byte, []Entry, error) {
	if w.err != nil {
		return nil, nil, w.err
	}
	if w.done {
		return nil, nil, errors.New("pack writer: finalize twice")
	}
	w.done = true
	hdr := EncodeHeader(w.entries)
	start := len(w.buf)
	w.buf = w.sealer.Seal(w.buf, 0, hdr, []byte(headerAD))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(w.buf)-start))

	// Verify before storing: the header must parse back to what we wrote.
	_, got, err := ReadHeader(bytes.NewReader(w.buf), int64(len(w.buf)), w.sealerFor)
	if err != nil {
		w.err = fmt.Errorf("pack writer: verify header: %w", err)
		return nil, nil, w.err
	}
	if len(got) != len(w.entries) {
		w.err = errors.New("pack writer: verify header: entry count mismatch")
		return nil, nil, w.err
	}
	return w.buf, w.entries, nil
}

func (w *Writer) sealerFor([crypt.SaltSize]byte) (*crypt.Sealer, error) { return w.sealer, nil }

// EncodeHeader returns the plaintext header for entries (without offsets,
// which are implied by the order).
func EncodeHeader(entries []Entry) []byte {
	b := make([]byte, 0, 16+len(entries)*(2+crypt.IDSize+8))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, byte(e.Type), byte(e.Enc))
		b = append(b, e.ID[:]...)
		if e.Enc == DeltaZstd {
			b = append(b, e.Base[:]...)
		}
		b = binary.AppendUvarint(b, uint64(e.Length))
		b = binary.AppendUvarint(b, uint64(e.RawLength))
	}
	return b
}

// DecodeHeader parses a plaintext header of a pack whose blobs occupy
// [PreambleSize, dataEnd). It checks that the blobs exactly fill that range.
func DecodeHeader(b []byte, dataEnd int64) ([]Entry, error) {
	r := binfmt.NewReader(b)
	n := r.Uvarint()
	if r.Err() == nil && n > MaxCount {
		return nil, fmt.Errorf("header: %d blobs: %w", n, ErrCorrupt)
	}
	entries := make([]Entry, 0, min(n, uint64(len(b)/(2+crypt.IDSize+2))+1))
	off := int64(PreambleSize)
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		var e Entry
		e.Type, e.Enc = BlobType(r.Byte()), Encoding(r.Byte())
		r.Bytes(e.ID[:])
		if e.Enc == DeltaZstd {
			r.Bytes(e.Base[:])
		}
		l, raw := r.Uvarint(), r.Uvarint()
		if r.Err() != nil {
			break
		}
		if !e.Type.Valid() || !e.Enc.Valid() {
			return nil, fmt.Errorf("header entry %d: type %d encoding %d: %w", i, e.Type, e.Enc, ErrCorrupt)
		}
		if l < crypt.Overhead || l > MaxBlobSize || raw > MaxBlobSize {
			return nil, fmt.Errorf("header entry %d: length %d: %w", i, l, ErrCorrupt)
		}
		e.Offset, e.Length, e.RawLength = off, int64(l), int64(raw)
		off += e.Length
		if off > dataEnd {
			return nil, fmt.Errorf("header entry %d: blob ends at %d past %d: %w", i, off, dataEnd, ErrCorrupt)
		}
		entries = append(entries, e)
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("header: %w: %w", r.Err(), ErrCorrupt)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("header: %d trailing bytes: %w", r.Len(), ErrCorrupt)
	}
	if off != dataEnd {
		return nil, fmt.Errorf("header: blobs end at %d, header starts at %d: %w", off, dataEnd, ErrCorrupt)
	}
	return entries, nil
}

// SealerFunc returns the subkey for a pack salt (usually MasterKey.Subkey).
type SealerFunc func(salt [crypt.SaltSize]byte) (*crypt.Sealer, error)

// ReadHeader reads and authenticates the header of a pack of the given size.
// It returns the salt and the entries with their offsets.
func ReadHeader(ra io.ReaderAt, size int64, subkey SealerFunc) ([crypt.SaltSize]byte, []Entry, error) {
	var salt [crypt.SaltSize]byte
	if size < PreambleSize+crypt.Overhead+TrailerSize {
		return salt, nil, fmt.Errorf("pack of %d bytes is too short: %w", size, ErrCorrupt)
	}
	pre := make([]byte, PreambleSize)
	if _, err := ra.ReadAt(pre, 0); err != nil {
		return salt, nil, fmt.Errorf("read preamble: %w", err)
	}
	if string(pre[:4]) != Magic {
		return salt, nil, fmt.Errorf("bad magic %q: %w", pre[:4], ErrCorrupt)
	}
	if pre[4] != Version {
		return salt, nil, fmt.Errorf("pack version %d unknown: %w", pre[4], ErrCorrupt)
	}
	copy(salt[:], pre[5:])
	var tr [TrailerSize]byte
	if _, err := ra.ReadAt(tr[:], size-TrailerSize); err != nil {
		return salt, nil, fmt.Errorf("read trailer: %w", err)
	}
	hl := int64(binary.LittleEndian.Uint32(tr[:]))
	if hl < crypt.Overhead || hl > MaxHeaderSize || hl > size-PreambleSize-TrailerSize {
		return salt, nil, fmt.Errorf("header length %d in pack of %d bytes: %w", hl, size, ErrCorrupt)
	}
	sealed := make([]byte, hl)
	hstart := size - TrailerSize - hl
	if _, err := ra.ReadAt(sealed, hstart); err != nil {
		return salt, nil, fmt.Errorf("read header: %w", err)
	}
	s, err := subkey(salt)
	if err != nil {
		return salt, nil, err
	}
	plain, err := s.Open(nil, 0, sealed, []byte(headerAD))
	if err != nil {
		return salt, nil, fmt.Errorf("open header: %w", err)
	}
	entries, err := DecodeHeader(plain, hstart)
	return salt, entries, err
}
