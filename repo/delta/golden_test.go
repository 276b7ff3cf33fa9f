package delta

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// xorshift is a tiny generator fixed by this file, so the golden inputs do
// not depend on any library's random streams.
type xorshift uint64

func (x *xorshift) next() uint64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return uint64(*x)
}

// goldenRows returns n bytes of tab-separated rows from seed.
func goldenRows(seed uint64, n int) []byte {
	x := xorshift(seed)
	var b bytes.Buffer
	for id := 1; b.Len() < n; id++ {
		v := x.next()
		b.WriteString(strings.Repeat("0", int(v%3)))
		b.WriteString(hex.EncodeToString([]byte{byte(id >> 8), byte(id)}))
		b.WriteString("\tuser")
		b.WriteString(hex.EncodeToString([]byte{byte(v >> 8), byte(v >> 16)}))
		b.WriteString("\t2026-11-22\tactive\n")
	}
	return b.Bytes()[:n]
}

// TestGolden pins the programs the encoder writes for fixed inputs, and
// checks that the pinned programs still decode. The decoding of a program
// is part of the on-disk format (bk-delta-v1): if a pinned program no
// longer decodes to its target, stored deltas are unreadable, which is a
// format change. A different program for the same input is allowed only
// when the decoding rules are unchanged; then update the vector here.
func TestGolden(t *testing.T) {
	alphabet := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/")
	rows := goldenRows(0x9E3779B97F4A7C15, 4096)
	edited := bytes.Clone(rows)
	copy(edited[1000:], "UPDATED")                                                          // in place
	edited = append(edited[:3000], append([]byte("\tinserted row\n"), edited[3000:]...)...) // insert
	edited = append(edited[:200], edited[260:]...)                                          // delete
	edited = append(edited, "appended\n"...)                                                // append
	for _, tc := range []struct {
		name         string
		base, target []byte
		prog         string // hex
	}{
		// version 1, length 0, no instructions.
		{"empty target", alphabet, nil, "0100"},
		// Shorter than MinMatch: one literal (5<<1 = 0x0a).
		{"short target", alphabet, []byte("short"), "0105" + "0a" + hex.EncodeToString([]byte("short"))},
		{"short base", []byte("tiny"), alphabet[:20], "0114" + "28" + hex.EncodeToString(alphabet[:20])},
		// copy 32 at 0 (0x41 0x00), literal "XY" (0x04 'X' 'Y'), copy 32 at 32 (0x41 0x20).
		{"insert", alphabet, append(append(bytes.Clone(alphabet[:32]), "XY"...), alphabet[32:]...), "014241000458594120"},
		{"rows", rows, edited, "01db1f910300c90b84020e5550444154454425f01eef1e81081c09696e73657274656420726f770a9111b81712617070656e6465640a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := hex.DecodeString(tc.prog)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(nil, tc.base, want, len(tc.target))
			if err != nil || !bytes.Equal(got, tc.target) {
				t.Fatalf("the pinned program no longer decodes to its target (%v): a format change", err)
			}
			var e Encoder
			if prog := e.Encode(nil, tc.base, tc.target); !bytes.Equal(prog, want) {
				t.Errorf("encoder output changed:\n got %x\nwant %x", prog, want)
			}
		})
	}
}

// corpus returns a base and a target built from one of several patterns,
// including degenerate ones (constant bytes, periodic data, unrelated data).
func corpus(rng *rand.Rand) (base, target []byte) {
	sizes := []int{0, 1, 15, 16, 17, 63, 64, 200, 4096, 65536}
	size := sizes[rng.IntN(len(sizes))]
	if rng.IntN(4) == 0 {
		size = rng.IntN(300 << 10)
	}
	switch rng.IntN(7) {
	case 0: // constant bytes: every base position hashes alike
		base = bytes.Repeat([]byte{byte(rng.IntN(256))}, size)
	case 1: // short period
		period := 1 + rng.IntN(24)
		base = bytes.Repeat(text(rng, period), size/period+1)[:size]
	case 2: // incompressible
		base = make([]byte, size)
		for i := range base {
			base[i] = byte(rng.Uint32())
		}
	default:
		base = text(rng, size)
	}
	switch rng.IntN(8) {
	case 0:
		target = text(rng, rng.IntN(size+1)) // unrelated
	case 1:
		target = append(bytes.Clone(base), base...) // base twice
	case 2: // blocks of the base in another order
		for i := 0; i < 1+rng.IntN(8) && len(base) > 0; i++ {
			a := rng.IntN(len(base))
			target = append(target, base[a:a+rng.IntN(len(base)-a+1)]...)
		}
	case 3:
		target = nil
	default:
		target = mutate(rng, base, rng.IntN(50))
	}
	return base, target
}

// TestProperties checks over random inputs: the program decodes to the
// target, encoding is deterministic and independent of what the encoder
// did before, decoding into a reused buffer gives the same, and a program
// is never more than 11 bytes longer than its target.
func TestProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var reused Encoder
	var out []byte
	for i := range 600 {
		base, target := corpus(rng)
		prog := reused.Encode(nil, base, target)
		var fresh Encoder
		if again := fresh.Encode(nil, base, target); !bytes.Equal(again, prog) {
			t.Fatalf("case %d: a fresh encoder writes another program than a reused one", i)
		}
		got, err := Decode(nil, base, prog, len(target))
		if err != nil || !bytes.Equal(got, target) {
			t.Fatalf("case %d (base %d, target %d bytes): decode %v, equal %v", i, len(base), len(target), err, bytes.Equal(got, target))
		}
		if cap(got) != len(target) {
			t.Fatalf("case %d: decoding %d bytes allocated %d", i, len(target), cap(got))
		}
		out, err = Decode(out, base, prog, len(target))
		if err != nil || !bytes.Equal(out, target) {
			t.Fatalf("case %d: decode into a reused buffer: %v", i, err)
		}
		if n, err := TargetLen(prog); err != nil || n != len(target) {
			t.Fatalf("case %d: TargetLen %d, %v; want %d", i, n, err, len(target))
		}
		// Worst case: 6 bytes of header, and each copy of 16 or more bytes
		// costs at most 10 bytes plus the 5-byte header of the literal after it.
		if len(prog) > len(target)+11 {
			t.Fatalf("case %d: program of %d bytes for a target of %d", i, len(prog), len(target))
		}
		if len(target) > 0 {
			if _, err := Decode(nil, base, prog, len(target)-1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("case %d: a limit below the target length: got %v, want ErrCorrupt", i, err)
			}
		}
	}
}

// TestDecodeBoundedAllocation checks that Decode never allocates more than
// maxLen: a program declaring 2 GiB fails at once against a limit of 1 MiB,
// and a successful decode allocates exactly the declared length, or nothing
// when dst is large enough.
func TestDecodeBoundedAllocation(t *testing.T) {
	huge := binary.AppendUvarint([]byte{Version}, 1<<31)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f) // a literal of 2^31 bytes, not present
	if n, err := TargetLen(huge); err != nil || n != 1<<31 {
		t.Fatalf("TargetLen: %d, %v", n, err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := Decode(nil, nil, huge, 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("2 GiB against 1 MiB: got %v, want ErrCorrupt", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 100*1024 {
		t.Fatalf("100 refused decodes allocated %d bytes", d)
	}
	tooLong := binary.AppendUvarint([]byte{Version}, 1<<31+1)
	if _, err := TargetLen(tooLong); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("TargetLen of 2^31+1: got %v, want ErrCorrupt", err)
	}

	// A valid program decodes into a large enough dst without allocating.
	rng := rand.New(rand.NewPCG(9, 10))
	base := text(rng, 256<<10)
	target := mutate(rng, base, 30)
	var e Encoder
	prog := e.Encode(nil, base, target)
	dst := make([]byte, 0, len(target))
	if allocs := testing.AllocsPerRun(20, func() {
		if _, err := Decode(dst, base, prog, len(target)); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("decode into a large enough buffer: %v allocations", allocs)
	}
	// A program whose instructions stop early fails without writing past
	// the declared length.
	short := prog[:len(prog)/2]
	if out, err := Decode(nil, base, short, len(target)); err == nil || out != nil {
		t.Fatalf("truncated program: got %d bytes, %v", len(out), err)
	}
}
