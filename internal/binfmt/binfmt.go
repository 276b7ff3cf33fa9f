// Package binfmt is a small decoder for bk's binary formats (pack headers,
// indexes and tree blobs): a cursor over a byte slice that remembers its first
// error, so a parser reads fields in sequence and checks once.
package binfmt

import (
	"encoding/binary"
	"errors"
)

// ErrTruncated is reported when a field runs past the end of the input.
var ErrTruncated = errors.New("truncated")

// Reader reads fields from a byte slice. After the first error every read
// returns a zero value and Err reports that error.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met.
func (r *Reader) Err() error { return r.err }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrTruncated
	}
	r.b = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Bytes reads n bytes into dst, which must have length n.
func (r *Reader) Bytes(dst []byte) {
	if len(r.b) < len(dst) {
		r.fail()
		return
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}
