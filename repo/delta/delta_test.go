package delta

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// mutate returns a copy of b with n random edits: replacements, inserts and deletes.
func mutate(rng *rand.Rand, b []byte, n int) []byte {
	out := append([]byte(nil), b...)
	for range n {
		if len(out) == 0 {
			out = append(out, 'x')
			continue
		}
		p := rng.IntN(len(out))
		switch rng.IntN(3) {
		case 0:
			out[p] ^= byte(1 + rng.IntN(255))
		case 1:
			ins := make([]byte, 1+rng.IntN(40))
			for i := range ins {
				ins[i] = byte('a' + rng.IntN(26))
			}
			out = append(out[:p], append(ins, out[p:]...)...)
		case 2:
			out = append(out[:p], out[min(len(out), p+1+rng.IntN(40)):]...)
		}
	}
	return out
}

func text(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghij\t\n0123456789"[rng.IntN(22)]
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var e Encoder
	for _, size := range []int{0, 1, 15, 16, 17, 100, 4096, 200 << 10} {
		for _, edits := range []int{0, 1, 5, 100} {
			base := text(rng, size)
			target := mutate(rng, base, edits)
			prog := e.Encode(nil, base, target)
			got, err := Decode(nil, base, prog, len(target))
			if err != nil || !bytes.Equal(got, target) {
				t.Fatalf("size %d edits %d: decode %v, equal %v", size, edits, err, bytes.Equal(got, target))
			}
			if again := e.Encode(nil, base, target); !bytes.Equal(again, prog) {
				t.Fatalf("size %d edits %d: encoding is not deterministic", size, edits)
			}
			if size >= 4096 && edits <= 5 && len(prog) > 64*(edits+1)+16 {
				t.Fatalf("size %d with %d edits: program of %d bytes is not small", size, edits, len(prog))
			}
		}
	}
}

func TestUnrelatedBase(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var e Encoder
	base, target := text(rng, 64<<10), text(rng, 64<<10)
	prog := e.Encode(nil, base, target)
	got, err := Decode(nil, base, prog, len(target))
	if err != nil || !bytes.Equal(got, target) {
		t.Fatalf("unrelated base: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	base := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name string
		prog []byte
	}{
		{"empty", nil},
		{"bad version", []byte{2, 0}},
		{"no length", []byte{1}},
		{"literal past end", []byte{1, 2, 4 << 1, 'a', 'b'}},
		{"truncated literal", []byte{1, 4, 4 << 1, 'a'}},
		{"zero-length op", []byte{1, 4, 0}},
		{"copy outside base", []byte{1, 4, 4<<1 | 1, 30}},
		{"copy offset huge", []byte{1, 4, 4<<1 | 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"trailing bytes", []byte{1, 1, 1 << 1, 'a', 0}},
		{"over the limit", []byte{1, 0xff, 0xff, 0x3f}},
		{"missing instructions", []byte{1, 4}},
	}
	for _, tc := range tests {
		if _, err := Decode(nil, base, tc.prog, 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", tc.name, err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := text(rng, 512<<10)
	target := mutate(rng, base, 20)
	var e Encoder
	var dst []byte
	b.SetBytes(int64(len(target)))
	for b.Loop() {
		dst = e.Encode(dst[:0], base, target)
	}
}

func BenchmarkDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := text(rng, 512<<10)
	target := mutate(rng, base, 20)
	var e Encoder
	prog := e.Encode(nil, base, target)
	out := make([]byte, 0, len(target))
	b.SetBytes(int64(len(target)))
	for b.Loop() {
		out, _ = Decode(out, base, prog, len(target))
	}
}
