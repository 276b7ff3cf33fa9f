package repo

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/bk-backup/bk/crypt"
)

// seqID returns a recognisable ID: n in the first 8 bytes and tag last.
func seqID(n uint64, tag byte) crypt.ID {
	var id crypt.ID
	binary.LittleEndian.PutUint64(id[:], n)
	id[crypt.IDSize-1] = tag
	return id
}

const (
	leafTag = 0x00
	nodeTag = 0xff
)

// leafSize is the size of leaf i: varied, so the sums are meaningful.
func leafSize(i uint64) int64 { return int64(i%1000) + 1 }

// node is what the fake save function keeps of a stored tree node. Level-0
// nodes are kept as the range of leaves they hold, so a tree over 16 million
// leaves fits in memory.
type node struct {
	level   int
	first   uint64 // level 0: index of the first leaf
	n       int    // number of entries
	size    int64
	entries []TreeEntry // level > 0 only
}

// fakeStore is the save function of a treeBuilder under test. It decodes and
// checks every node it is given.
type fakeStore struct {
	t     *testing.T
	nodes map[crypt.ID]node
	next  uint64
}

func (s *fakeStore) save(plain []byte) (crypt.ID, error) {
	level, entries, err := DecodeTree(plain)
	if err != nil {
		s.t.Fatalf("the builder stored an undecodable node: %v", err)
	}
	if !bytes.Equal(EncodeTree(level, entries), plain) {
		s.t.Fatal("a stored node is not in canonical encoding")
	}
	nd := node{level: level, n: len(entries)}
	for i, e := range entries {
		nd.size += e.Size
		if level > 0 {
			continue
		}
		idx := binary.LittleEndian.Uint64(e.ID[:])
		if i == 0 {
			nd.first = idx
		}
		if e.ID != seqID(nd.first+uint64(i), leafTag) || e.Size != leafSize(idx) {
			s.t.Fatalf("level-0 node entry %d is leaf %d; want leaf %d", i, idx, nd.first+uint64(i))
		}
	}
	if level > 0 {
		nd.entries = entries
	}
	s.next++
	id := seqID(s.next, nodeTag)
	s.nodes[id] = nd
	return id, nil
}

// buildTree feeds n leaves to a treeBuilder and returns the root and store.
func buildTree(t *testing.T, n uint64) (crypt.ID, *fakeStore) {
	t.Helper()
	fs := &fakeStore{t: t, nodes: map[crypt.ID]node{}}
	b := &treeBuilder{save: fs.save}
	for i := range n {
		if err := b.add(0, TreeEntry{ID: seqID(i, leafTag), Size: leafSize(i)}); err != nil {
			t.Fatal(err)
		}
	}
	root, err := b.finish()
	if err != nil {
		t.Fatal(err)
	}
	return root, fs
}

// wantDepth is the level of the root of a canonical tree over n leaves.
func wantDepth(n uint64) int {
	level := 0
	for capacity := uint64(TreeFanout); n > capacity; capacity *= TreeFanout {
		level++
	}
	return level
}

// checkShape walks the tree from root and checks the canonical shape of
// FORMAT.md §7: leaves in stream order, sizes that add up, every node full
// except the last one of its level, a root of the minimal level with more
// than one entry (unless it is a level-0 node), and no stored node left out.
func checkShape(t *testing.T, root crypt.ID, fs *fakeStore, n uint64) {
	t.Helper()
	var nextLeaf uint64
	reached := map[crypt.ID]bool{}
	perLevel := map[int][]int{} // entries of each node, in stream order
	var walk func(id crypt.ID, level int) int64
	walk = func(id crypt.ID, level int) int64 {
		nd, ok := fs.nodes[id]
		if !ok {
			t.Fatalf("tree references node %x that was never stored", id[:8])
		}
		if reached[id] {
			t.Fatalf("node %x is referenced twice", id[:8])
		}
		reached[id] = true
		if level >= 0 && nd.level != level {
			t.Fatalf("node at level %d, want %d", nd.level, level)
		}
		perLevel[nd.level] = append(perLevel[nd.level], nd.n)
		if nd.level == 0 {
			if nd.n > 0 && nd.first != nextLeaf {
				t.Fatalf("leaves out of order: node starts at leaf %d, want %d", nd.first, nextLeaf)
			}
			nextLeaf += uint64(nd.n)
			return nd.size
		}
		var sum int64
		for _, e := range nd.entries {
			if got := walk(e.ID, nd.level-1); got != e.Size {
				t.Fatalf("entry says %d bytes, its node covers %d", e.Size, got)
			}
			sum += e.Size
		}
		return sum
	}
	rootNode := fs.nodes[root]
	total := walk(root, -1)

	var wantTotal int64
	for i := range n {
		wantTotal += leafSize(i)
	}
	if nextLeaf != n || total != wantTotal {
		t.Fatalf("tree covers %d leaves and %d bytes, want %d and %d", nextLeaf, total, n, wantTotal)
	}
	if rootNode.level != wantDepth(n) {
		t.Fatalf("root at level %d, want %d", rootNode.level, wantDepth(n))
	}
	if rootNode.level > 0 && rootNode.n < 2 {
		t.Fatalf("root at level %d has %d entries; a single entry's node must be the root", rootNode.level, rootNode.n)
	}
	for level, counts := range perLevel {
		for i, c := range counts[:len(counts)-1] {
			if c != TreeFanout {
				t.Fatalf("level %d node %d of %d has %d entries; all but the last must be full", level, i, len(counts), c)
			}
		}
		if last := counts[len(counts)-1]; last == 0 && n > 0 || last > TreeFanout {
			t.Fatalf("level %d: last node has %d entries", level, last)
		}
	}
	if len(reached) != len(fs.nodes) {
		t.Fatalf("the builder stored %d nodes, the tree reaches %d", len(fs.nodes), len(reached))
	}
}

func TestTreeBuilderShape(t *testing.T) {
	const f = TreeFanout
	sizes := []uint64{0, 1, 2, f - 1, f, f + 1, 2 * f, 2*f + 1, 3*f + 1, 17*f + 5}
	if !testing.Short() {
		// f*f leaves make one full level-1 node that becomes the root; one
		// more leaf gives a level-2 root. About 2 s each.
		sizes = append(sizes, f*f, f*f+1)
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			root, fs := buildTree(t, n)
			checkShape(t, root, fs, n)
		})
	}
}

// TestTreeBuilderSaveError checks that a failing save stops the builder.
func TestTreeBuilderSaveError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	b := &treeBuilder{save: func([]byte) (crypt.ID, error) {
		calls++
		return crypt.ID{}, boom
	}}
	var err error
	for i := uint64(0); i < TreeFanout && err == nil; i++ {
		err = b.add(0, TreeEntry{ID: seqID(i, leafTag), Size: 1})
	}
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("add: err %v after %d saves; want boom after 1", err, calls)
	}
	b = &treeBuilder{save: b.save}
	if err := b.add(0, TreeEntry{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.finish(); !errors.Is(err, boom) {
		t.Fatalf("finish: %v, want boom", err)
	}
}

// TestTreeBuilderDepthLimit checks that the builder refuses to grow past
// maxTreeLvl instead of writing a tree DecodeTree would reject.
func TestTreeBuilderDepthLimit(t *testing.T) {
	b := &treeBuilder{save: func([]byte) (crypt.ID, error) { return crypt.ID{}, nil }}
	if err := b.add(maxTreeLvl, TreeEntry{}); err == nil {
		t.Fatal("add at the maximum level succeeded")
	}
}

func TestTreeRoundTrip(t *testing.T) {
	full := make([]TreeEntry, TreeFanout)
	for i := range full {
		full[i] = TreeEntry{ID: seqID(uint64(i), 7), Size: int64(i) << 20}
	}
	for _, tc := range []struct {
		level   int
		entries []TreeEntry
	}{
		{0, nil},
		{0, []TreeEntry{{ID: seqID(1, 0), Size: 1}}},
		{1, []TreeEntry{{ID: seqID(1, 0), Size: 0}, {ID: seqID(2, 0), Size: 1 << 62}}},
		{maxTreeLvl, full[:3]},
		{3, full},
	} {
		b := EncodeTree(tc.level, tc.entries)
		level, entries, err := DecodeTree(b)
		if err != nil {
			t.Fatalf("level %d, %d entries: %v", tc.level, len(tc.entries), err)
		}
		if level != tc.level || len(entries) != len(tc.entries) {
			t.Fatalf("decoded level %d with %d entries, want %d with %d", level, len(entries), tc.level, len(tc.entries))
		}
		for i := range entries {
			if entries[i] != tc.entries[i] {
				t.Fatalf("entry %d: %+v, want %+v", i, entries[i], tc.entries[i])
			}
		}
	}
}

// goldenTree pins the tree blob encoding of FORMAT.md §7.
const goldenTree = "02" + "01" + "02" +
	"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" + "80c00c" +
	"2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40" + "01"

func TestTreeGolden(t *testing.T) {
	var a, b crypt.ID
	for i := range a {
		a[i], b[i] = byte(i+1), byte(i+0x21)
	}
	got := EncodeTree(1, []TreeEntry{{ID: a, Size: 200 << 10}, {ID: b, Size: 1}})
	if h := hex.EncodeToString(got); h != goldenTree {
		t.Fatalf("tree encoding changed (format change?):\n got %s\nwant %s", h, goldenTree)
	}
	// Level-0 entries carry the chunk's head fingerprint, little-endian.
	leaf := EncodeTree(0, []TreeEntry{{ID: a, Size: 1, Head: 0x0102030405060708}})
	want := "020001" + hex.EncodeToString(a[:]) + "01" + "0807060504030201"
	if h := hex.EncodeToString(leaf); h != want {
		t.Fatalf("leaf encoding changed:\n got %s\nwant %s", h, want)
	}
}

func TestDecodeTreeVersion1(t *testing.T) {
	// Version 1 leaves have no head fingerprint; they still decode.
	id := seqID(9, 0)
	v1 := append(append([]byte{1, 0, 1}, id[:]...), 5)
	level, entries, err := DecodeTree(v1)
	if err != nil || level != 0 || len(entries) != 1 || entries[0] != (TreeEntry{ID: id, Size: 5}) {
		t.Fatalf("version 1 leaf: %v %d %+v", err, level, entries)
	}
}

func TestDecodeTreeCorrupt(t *testing.T) {
	valid := EncodeTree(0, []TreeEntry{{ID: seqID(1, 0), Size: 5}, {ID: seqID(2, 0), Size: 6}})
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(valid)) }
	cases := map[string][]byte{
		"empty":          {},
		"version 0":      mod(func(b []byte) []byte { b[0] = 0; return b }),
		"version 3":      mod(func(b []byte) []byte { b[0] = 3; return b }),
		"level too deep": mod(func(b []byte) []byte { b[1] = maxTreeLvl + 1; return b }),
		"no count":       valid[:2],
		"count too big":  append([]byte{TreeVersion, 0}, binary.AppendUvarint(nil, TreeFanout+1)...),
		"huge count":     append([]byte{TreeVersion, 0}, binary.AppendUvarint(nil, math.MaxUint64)...),
		"count > data":   mod(func(b []byte) []byte { b[2] = 3; return b }),
		"trailing byte":  append(bytes.Clone(valid), 0),
		"size > 2^62": append(append([]byte{TreeVersion, 0, 1}, make([]byte, crypt.IDSize)...),
			binary.AppendUvarint(nil, 1<<62+1)...),
		"bad varint": append(append([]byte{TreeVersion, 0, 1}, make([]byte, crypt.IDSize)...),
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for i := range len(valid) {
		cases[fmt.Sprintf("truncated to %d", i)] = valid[:i]
	}
	for name, b := range cases {
		if _, _, err := DecodeTree(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}
