package chunk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/restic/chunker"
)

// testPol is a fixed irreducible polynomial of degree 53.
const testPol = chunker.Pol(0x3DA3358B4DC173)

func testParams() Params {
	return Params{Algorithm: AlgorithmRabin, Polynomial: testPol, MinSize: DefaultMinSize, MaxSize: DefaultMaxSize, AverageBits: DefaultAverageBits}
}

// randomBytes returns n bytes from ChaCha8 seeded with seed. The stream is
// fixed by the math/rand/v2 compatibility promise, so goldens may use it.
func randomBytes(seed byte, n int) []byte {
	var s [32]byte
	s[0] = seed
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// split returns the chunks of data, copying each one.
func split(t testing.TB, rd io.Reader, p Params) [][]byte {
	t.Helper()
	s := NewSplitter(rd, p)
	var chunks [][]byte
	var buf []byte
	for {
		var err error
		buf, err = s.Next(buf)
		if err == io.EOF {
			return chunks
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		chunks = append(chunks, bytes.Clone(buf))
	}
}

func checkChunks(t *testing.T, chunks [][]byte, data []byte, p Params) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatalf("%d chunks of %d bytes do not reassemble the %d-byte input", len(chunks), len(got), len(data))
	}
	for i, c := range chunks {
		last := i == len(chunks)-1
		if len(c) == 0 || uint(len(c)) > p.MaxSize || (!last && uint(len(c)) < p.MinSize) {
			t.Fatalf("chunk %d/%d has %d bytes, want [%d, %d]", i, len(chunks), len(c), p.MinSize, p.MaxSize)
		}
	}
}

func TestSplitRoundTrip(t *testing.T) {
	p := testParams()
	for _, n := range []int{0, 1, 63, 64, int(p.MinSize) - 1, int(p.MinSize), int(p.MinSize) + 1, int(p.MaxSize) - 1, int(p.MaxSize), int(p.MaxSize) + 1, 3*int(p.MaxSize) + 12345} {
		data := randomBytes(byte(n), n)
		chunks := split(t, bytes.NewReader(data), p)
		checkChunks(t, chunks, data, p)
		if n == 0 && len(chunks) != 0 {
			t.Errorf("empty stream gave %d chunks", len(chunks))
		}
		if n > 0 && uint(n) <= p.MinSize && len(chunks) != 1 {
			t.Errorf("%d-byte stream gave %d chunks, want 1", n, len(chunks))
		}
	}
}

func TestSplitSmallParams(t *testing.T) {
	// Small sizes give many chunks, so boundaries at every kind of position
	// (min, content, max, end) are exercised.
	p := Params{Algorithm: AlgorithmRabin, Polynomial: testPol, MinSize: 64, MaxSize: 4096, AverageBits: 10}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1, 5<<20)
	chunks := split(t, bytes.NewReader(data), p)
	checkChunks(t, chunks, data, p)
	if len(chunks) < 2000 {
		t.Errorf("only %d chunks from %d bytes with 1 KiB average", len(chunks), len(data))
	}
	// The reader's read sizes must not move boundaries.
	odd := split(t, iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(data[:200000]))), p)
	even := split(t, bytes.NewReader(data[:200000]), p)
	if len(odd) != len(even) {
		t.Fatalf("one-byte reads gave %d chunks, full reads %d", len(odd), len(even))
	}
	for i := range odd {
		if !bytes.Equal(odd[i], even[i]) {
			t.Fatalf("chunk %d differs between read patterns", i)
		}
	}
}

func TestSplitMaxSize(t *testing.T) {
	// With 2^26 average and a 4 KiB maximum, content boundaries are
	// vanishingly rare: nearly every cut is forced at MaxSize.
	p := Params{Algorithm: AlgorithmRabin, Polynomial: testPol, MinSize: 64, MaxSize: 4096, AverageBits: 26}
	data := randomBytes(6, 1<<20+100)
	chunks := split(t, bytes.NewReader(data), p)
	checkChunks(t, chunks, data, p)
	var full int
	for _, c := range chunks {
		if uint(len(c)) == p.MaxSize {
			full++
		}
	}
	if full < len(chunks)-2 {
		t.Errorf("%d of %d chunks at MaxSize, want nearly all", full, len(chunks))
	}
}

func TestSplitZeros(t *testing.T) {
	// A window of zeros has fingerprint zero, which is a boundary, so a run
	// of zeros is cut at every MinSize.
	p := testParams()
	data := make([]byte, 10<<20)
	chunks := split(t, bytes.NewReader(data), p)
	checkChunks(t, chunks, data, p)
	for i, c := range chunks[:len(chunks)-1] {
		if uint(len(c)) != p.MinSize {
			t.Fatalf("zero chunk %d has %d bytes, want MinSize %d", i, len(c), p.MinSize)
		}
	}
}

func TestNextReusesBuffer(t *testing.T) {
	p := testParams()
	data := randomBytes(2, 3<<20)
	s := NewSplitter(bytes.NewReader(data), p)
	buf := make([]byte, 10, p.MaxSize)
	got, err := s.Next(buf)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[:1][0] {
		t.Error("Next did not reuse a buffer with enough capacity")
	}
	if !bytes.Equal(got, data[:len(got)]) {
		t.Error("first chunk is not the start of the input")
	}
}

func TestEmptyStream(t *testing.T) {
	s := NewSplitter(bytes.NewReader(nil), testParams())
	for range 3 {
		if got, err := s.Next(nil); err != io.EOF || len(got) != 0 {
			t.Fatalf("Next on empty stream = %d bytes, %v; want io.EOF", len(got), err)
		}
	}
}

func TestReset(t *testing.T) {
	p := testParams()
	a, b := randomBytes(3, 2<<20), randomBytes(4, 3<<20)
	s := NewSplitter(bytes.NewReader(a), p)
	for {
		if _, err := s.Next(nil); err == io.EOF {
			break
		}
	}
	s.Reset(bytes.NewReader(b))
	var chunks [][]byte
	for {
		c, err := s.Next(nil)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	want := split(t, bytes.NewReader(b), p)
	if len(chunks) != len(want) {
		t.Fatalf("after Reset: %d chunks, fresh splitter %d", len(chunks), len(want))
	}
	for i := range want {
		if !bytes.Equal(chunks[i], want[i]) {
			t.Fatalf("after Reset: chunk %d differs", i)
		}
	}
}

func TestReadError(t *testing.T) {
	p := testParams()
	boom := errors.New("boom")
	data := randomBytes(5, 3<<20)
	rd := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))
	s := NewSplitter(rd, p)
	var n int
	var err error
	for err == nil {
		var c []byte
		c, err = s.Next(nil)
		n += len(c)
	}
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if n >= len(data) {
		t.Errorf("read error lost: %d of %d bytes returned as chunks", n, len(data))
	}
	if _, again := s.Next(nil); !errors.Is(again, boom) {
		t.Errorf("second Next after error = %v, want sticky boom", again)
	}

	// A reader error wrapping io.EOF is an error, not the end of the stream.
	wrapped := fmt.Errorf("disk: %w", io.EOF)
	chunks := 0
	s = NewSplitter(io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(wrapped)), p)
	for {
		_, err = s.Next(nil)
		if err != nil {
			break
		}
		chunks++
	}
	if err == io.EOF || !errors.Is(err, wrapped) {
		t.Errorf("wrapped EOF: err = %v after %d chunks, want the reader's error", err, chunks)
	}
}

func TestValidate(t *testing.T) {
	ok := testParams()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default params: %v", err)
	}
	for name, edit := range map[string]func(p *Params){
		"algorithm":         func(p *Params) { p.Algorithm = "fastcdc" },
		"no algorithm":      func(p *Params) { p.Algorithm = "" },
		"zero polynomial":   func(p *Params) { p.Polynomial = 0 },
		"degree 52":         func(p *Params) { p.Polynomial = testPol >> 1 },
		"degree 54":         func(p *Params) { p.Polynomial = testPol<<1 | 1 },
		"reducible":         func(p *Params) { p.Polynomial = testPol ^ 1 },
		"min below window":  func(p *Params) { p.MinSize = 63 },
		"min zero":          func(p *Params) { p.MinSize = 0 },
		"min equals max":    func(p *Params) { p.MinSize = p.MaxSize },
		"min above max":     func(p *Params) { p.MinSize, p.MaxSize = p.MaxSize, p.MinSize },
		"max too large":     func(p *Params) { p.MaxSize = 64<<20 + 1 },
		"average bits 9":    func(p *Params) { p.AverageBits = 9 },
		"average bits 27":   func(p *Params) { p.AverageBits = 27 },
		"average bits -1":   func(p *Params) { p.AverageBits = -1 },
		"max size overflow": func(p *Params) { p.MaxSize = ^uint(0) },
	} {
		p := testParams()
		edit(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, p)
		}
		if name != "reducible" {
			if _, err := NewSplitter(bytes.NewReader([]byte("x")), p).Next(nil); err == nil || err == io.EOF {
				t.Errorf("%s: Next with invalid params = %v, want an error", name, err)
			}
		}
	}
	edge := Params{Algorithm: AlgorithmRabin, Polynomial: testPol, MinSize: 64, MaxSize: 64 << 20, AverageBits: 26}
	if err := edge.Validate(); err != nil {
		t.Errorf("edge params: %v", err)
	}
}

func TestNewParams(t *testing.T) {
	a, err := NewParams()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("NewParams gave invalid params: %v", err)
	}
	if a.MinSize != 128<<10 || a.MaxSize != 4<<20 || a.AverageBits != 19 || a.Algorithm != AlgorithmRabin {
		t.Errorf("NewParams = %+v, want the defaults", a)
	}
	b, _ := NewParams()
	if a.Polynomial == b.Polynomial {
		t.Error("two NewParams calls chose the same polynomial")
	}
}

func TestParamsJSON(t *testing.T) {
	const golden = `{"algorithm":"rabin-restic-v0.4","polynomial":"3da3358b4dc173","min_size":131072,"max_size":4194304,"average_bits":19}`
	data, err := json.Marshal(testParams())
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != golden {
		t.Errorf("JSON changed (format change?):\n got %s\nwant %s", data, golden)
	}
	var p Params
	if err := json.Unmarshal(data, &p); err != nil || p != testParams() {
		t.Errorf("round trip = %+v, %v", p, err)
	}
}
