package chunk

import (
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// AlgorithmRabin names the Rabin-fingerprint chunker of
// github.com/restic/chunker v0.4.0. Part of the on-disk format; must not
// change.
const AlgorithmRabin = "rabin-restic-v0.4"

// Defaults for new repositories.
const (
	DefaultMinSize     = 128 << 10
	DefaultMaxSize     = 4 << 20
	DefaultAverageBits = 19 // 512 KiB average
)

// Limits that Validate enforces on Params read from untrusted configs.
const (
	minMinSize     = 64 // the chunker's window size
	maxMaxSize     = 64 << 20
	minAverageBits = 10
	maxAverageBits = 26
	polDegree      = 53
)

// Params selects a chunking algorithm and its parameters. It is stored in the
// repository config, so it is untrusted input: call Validate after reading it.
type Params struct {
	Algorithm   string      `json:"algorithm"`
	Polynomial  chunker.Pol `json:"polynomial"`
	MinSize     uint        `json:"min_size"`
	MaxSize     uint        `json:"max_size"`
	AverageBits int         `json:"average_bits"`
}

// NewParams returns the default parameters with a fresh random irreducible
// polynomial, for a new repository.
func NewParams() (Params, error) {
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return Params{}, fmt.Errorf("new chunk params: %w", err)
	}
	return Params{
		Algorithm:   AlgorithmRabin,
		Polynomial:  pol,
		MinSize:     DefaultMinSize,
		MaxSize:     DefaultMaxSize,
		AverageBits: DefaultAverageBits,
	}, nil
}

// Validate reports whether p is usable: a known algorithm, an irreducible
// polynomial of degree 53, 64 <= MinSize < MaxSize <= 64 MiB and
// 10 <= AverageBits <= 26. The irreducibility test takes about a millisecond,
// so validate once when the config is loaded, not per stream.
func (p Params) Validate() error {
	if err := p.check(); err != nil {
		return err
	}
	if !p.Polynomial.Irreducible() {
		return fmt.Errorf("chunk params: polynomial %v is not irreducible", p.Polynomial)
	}
	return nil
}

// check is Validate without the costly irreducibility test.
func (p Params) check() error {
	switch {
	case p.Algorithm != AlgorithmRabin:
		return fmt.Errorf("chunk params: unknown algorithm %q (want %q)", p.Algorithm, AlgorithmRabin)
	case p.Polynomial.Deg() != polDegree:
		return fmt.Errorf("chunk params: polynomial %v has degree %d, want %d", p.Polynomial, p.Polynomial.Deg(), polDegree)
	case p.MinSize < minMinSize || p.MinSize >= p.MaxSize || p.MaxSize > maxMaxSize:
		return fmt.Errorf("chunk params: sizes min %d, max %d: want %d <= min < max <= %d", p.MinSize, p.MaxSize, minMinSize, maxMaxSize)
	case p.AverageBits < minAverageBits || p.AverageBits > maxAverageBits:
		return fmt.Errorf("chunk params: average_bits %d: want %d to %d", p.AverageBits, minAverageBits, maxAverageBits)
	}
	return nil
}

// Splitter cuts the stream from one reader into chunks. It is not safe for
// concurrent use.
type Splitter struct {
	p   Params
	c   *chunker.Chunker
	off uint64 // stream offset of the next chunk
	err error  // sticky: io.EOF, a read error, or invalid Params
}

// NewSplitter returns a Splitter reading rd. p should have passed Validate;
// NewSplitter repeats the cheap checks, and if p fails them every call to
// Next returns the error.
func NewSplitter(rd io.Reader, p Params) *Splitter {
	s := &Splitter{p: p}
	if err := p.check(); err != nil {
		s.err = err
		return s
	}
	s.c = chunker.NewWithBoundaries(rd, p.Polynomial, p.MinSize, p.MaxSize)
	s.c.SetAverageBits(p.AverageBits)
	return s
}

// Reset makes s split a new stream from rd with the same Params, reusing its
// internal read buffer.
func (s *Splitter) Reset(rd io.Reader) {
	if s.c == nil { // invalid Params: keep the error
		return
	}
	s.c.ResetWithBoundaries(rd, s.p.Polynomial, s.p.MinSize, s.p.MaxSize)
	s.c.SetAverageBits(s.p.AverageBits)
	s.off, s.err = 0, nil
}

// Next returns the next chunk: its bytes appended to buf[:0], growing buf if
// needed, so a caller can pass the previous chunk back to reuse its memory.
// The returned bytes are valid until the caller reuses them.
//
// After the last chunk Next returns io.EOF; an empty stream returns io.EOF at
// once. Every chunk but the last is between MinSize and MaxSize bytes long;
// the last is between 1 and MaxSize. A read error is returned with context
// and, like io.EOF, by every later call.
func (s *Splitter) Next(buf []byte) ([]byte, error) {
	if s.err != nil {
		return buf[:0], s.err
	}
	c, err := s.c.Next(buf)
	switch {
	// Compare with == on purpose: the chunker signals the end with io.EOF
	// itself, and a reader error that merely wraps io.EOF must not pass for
	// a clean end, since the chunker drops the partial chunk on errors.
	case err == io.EOF:
		s.err = io.EOF
		return buf[:0], io.EOF
	case err != nil:
		s.err = fmt.Errorf("read chunk at stream offset %d: %w", s.off, err)
		return buf[:0], s.err
	}
	s.off += uint64(len(c.Data))
	return c.Data, nil
}
