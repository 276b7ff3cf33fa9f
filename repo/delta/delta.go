// Package delta encodes a chunk as a program that rebuilds it from a base
// chunk: copies of base ranges and literal bytes (repo/FORMAT.md, section 5,
// "bk-delta-v1"). Unchanged rows of a database dump become copies, so a
// chunk that changed a little costs about what changed.
//
// The encoding is deterministic: the same base and target always give the
// same program. Decode checks every instruction against the base and the
// declared length, so hostile input can neither panic nor allocate without
// bound.
package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Format constants; part of the on-disk format, they must not change.
const (
	Version = 1
	// MinMatch is the shortest copy the encoder emits.
	MinMatch = 16
	// stride is the spacing of indexed base positions.
	stride = 4
)

// ErrCorrupt marks a delta program that does not decode.
var ErrCorrupt = errors.New("corrupt delta")

// Encoder builds delta programs. It keeps its hash table between calls; it is
// not safe for concurrent use.
type Encoder struct {
	table []int32
}

func hash8(v uint64, shift uint) uint32 { return uint32((v * 0x9E3779B97F4A7C15) >> shift) }

// Encode appends to dst the program that turns base into target.
//
// Program: byte Version; uvarint len(target); then instructions until the
// output is complete, each a uvarint h: h&1 == 0 is a literal of h>>1 bytes
// that follow; h&1 == 1 is a copy of h>>1 bytes from the base at the offset
// in the next uvarint.
func (e *Encoder) Encode(dst, base, target []byte) []byte {
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(len(target)))
	if len(base) < MinMatch || len(target) < MinMatch {
		return appendLiteral(dst, target)
	}
	// Index every stride-th position of the base by its first 8 bytes.
	n := len(base) / stride
	tbits := bits.Len(uint(n)) + 1
	size := 1 << tbits
	if cap(e.table) < size {
		e.table = make([]int32, size)
	}
	table := e.table[:size]
	clear(table)
	shift := uint(64 - tbits)
	for p := 0; p+MinMatch <= len(base); p += stride {
		table[hash8(binary.LittleEndian.Uint64(base[p:]), shift)] = int32(p + 1)
	}

	lit := 0   // start of pending literal bytes
	next := -1 // base offset where the last copy ended: the likeliest next match
	for i := 0; i+MinMatch <= len(target); {
		cand := -1
		v := binary.LittleEndian.Uint64(target[i:])
		if next >= 0 && next+8 <= len(base) && binary.LittleEndian.Uint64(base[next:]) == v {
			cand = next
		} else if c := int(table[hash8(v, shift)]) - 1; c >= 0 && binary.LittleEndian.Uint64(base[c:]) == v {
			cand = c
		}
		if cand < 0 {
			i++
			continue
		}
		m := matchLen(base[cand:], target[i:])
		if m < MinMatch {
			i++
			continue
		}
		// Grow the match backwards into the pending literal.
		for i > lit && cand > 0 && base[cand-1] == target[i-1] {
			i--
			cand--
			m++
		}
		if i > lit {
			dst = appendLiteral(dst, target[lit:i])
		}
		dst = binary.AppendUvarint(dst, uint64(m)<<1|1)
		dst = binary.AppendUvarint(dst, uint64(cand))
		i += m
		lit, next = i, cand+m
	}
	if lit < len(target) {
		dst = appendLiteral(dst, target[lit:])
	}
	return dst
}

func appendLiteral(dst, lit []byte) []byte {
	if len(lit) == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(lit))<<1)
	return append(dst, lit...)
}

// matchLen returns the length of the common prefix of a and b.
func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)>>3
		}
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}

// TargetLen returns the length a program declares, without decoding it.
func TargetLen(prog []byte) (int, error) {
	if len(prog) < 1 || prog[0] != Version {
		return 0, fmt.Errorf("delta version: %w", ErrCorrupt)
	}
	n, k := binary.Uvarint(prog[1:])
	if k <= 0 || n > 1<<31 {
		return 0, fmt.Errorf("delta length: %w", ErrCorrupt)
	}
	return int(n), nil
}

// Decode applies prog to base and appends the result to dst[:0]. It refuses
// programs that declare more than maxLen bytes.
func Decode(dst, base, prog []byte, maxLen int) ([]byte, error) {
	n, err := TargetLen(prog)
	if err != nil {
		return nil, err
	}
	if n > maxLen {
		return nil, fmt.Errorf("delta declares %d bytes, limit %d: %w", n, maxLen, ErrCorrupt)
	}
	_, k := binary.Uvarint(prog[1:])
	p := prog[1+k:]
	out := dst[:0]
	if cap(out) < n {
		out = make([]byte, 0, n)
	}
	for len(out) < n {
		h, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("truncated instruction: %w", ErrCorrupt)
		}
		p = p[k:]
		l := h >> 1
		if l == 0 || l > uint64(n-len(out)) {
			return nil, fmt.Errorf("instruction of %d bytes with %d left: %w", l, n-len(out), ErrCorrupt)
		}
		if h&1 == 0 {
			if uint64(len(p)) < l {
				return nil, fmt.Errorf("truncated literal: %w", ErrCorrupt)
			}
			out = append(out, p[:l]...)
			p = p[l:]
			continue
		}
		off, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("truncated copy: %w", ErrCorrupt)
		}
		p = p[k:]
		if off > uint64(len(base)) || l > uint64(len(base))-off {
			return nil, fmt.Errorf("copy of %d bytes at %d from a base of %d: %w", l, off, len(base), ErrCorrupt)
		}
		out = append(out, base[off:off+l]...)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d trailing bytes: %w", len(p), ErrCorrupt)
	}
	return out, nil
}
