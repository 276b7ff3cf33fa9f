package chunk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// goldenInput is 32 MiB from ChaCha8 with seed {1, 0, ..., 0}.
const (
	goldenInputSize   = 32 << 20
	goldenInputSHA256 = "bf1c15c1b232ebbfda3d878d1e81886af11df21c852fa5a2edd34e3599bfc21c"
)

// goldenLengths pins the chunk lengths of goldenInput under testParams.
// Chunk boundaries are part of the repository format: if this test fails,
// deduplication against existing repositories is broken. Do not update the
// list; introduce a new algorithm name instead.
var goldenLengths = []int{
	533173, 249455, 240913, 618748, 183265, 147200, 1826502, 465750,
	1128900, 320776, 270459, 201490, 939163, 2234238, 321052, 1623250,
	193782, 558191, 144162, 192905, 500516, 2282876, 236618, 423230,
	250470, 352902, 196731, 1297053, 357812, 347949, 818985, 540735,
	271747, 373189, 664164, 605742, 711952, 1218778, 539124, 344853,
	502658, 541406, 332673, 2631300, 778560, 1657864, 348060, 886711,
	237053, 909347,
}

func TestGoldenBoundaries(t *testing.T) {
	data := randomBytes(1, goldenInputSize)
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != goldenInputSHA256 {
		t.Fatalf("golden input changed: sha256 %s, want %s", got, goldenInputSHA256)
	}
	chunks := split(t, bytes.NewReader(data), testParams())
	got := make([]int, len(chunks))
	for i, c := range chunks {
		got[i] = len(c)
	}
	if fmt.Sprint(got) != fmt.Sprint(goldenLengths) {
		t.Errorf("chunk boundaries changed (format change!):\n got %d chunks %v\nwant %d chunks %v", len(got), got, len(goldenLengths), goldenLengths)
	}
}

// textLike returns n bytes of pseudo-random words and punctuation, closer to
// real files than uniform noise.
func textLike(n int) []byte {
	words := []string{"the", "backup", "of", "a", "database", "is", "split", "into", "chunks", "and", "each", "chunk", "sealed", "with", "key", "snapshot", "index", "pack", "blob", "restore", "0", "42", "2026-11-22", "\n", ", ", ". "}
	r := rand.New(rand.NewChaCha8([32]byte{2}))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, ' ')
	}
	return b[:n]
}

func BenchmarkSplitter(b *testing.B) {
	data := textLike(64 << 20)
	p := testParams()
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 0, p.MaxSize)
	s := NewSplitter(nil, p)
	rd := bytes.NewReader(nil)
	for b.Loop() {
		rd.Reset(data)
		s.Reset(rd)
		var err error
		for err == nil {
			buf, err = s.Next(buf)
		}
		if err != io.EOF {
			b.Fatal(err)
		}
	}
}
