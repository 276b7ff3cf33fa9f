package repo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bk-backup/bk/crypt"
)

// Node types of a directory snapshot's catalogue (FORMAT.md §7.1); part of
// the on-disk format.
const (
	NodeFile       = "file"
	NodeDir        = "dir"
	NodeSymlink    = "symlink"
	NodeFIFO       = "fifo"
	NodeDevice     = "device"
	NodeCharDevice = "chardevice"
	NodeSocket     = "socket"
)

// maxNodeLine bounds one catalogue line, so a corrupt catalogue cannot make
// a reader buffer without limit.
const maxNodeLine = 1 << 20

// Node is one entry of a directory snapshot's catalogue (FORMAT.md §7.1).
type Node struct {
	// Path is slash-separated and relative to the snapshot's root; "." is
	// the root directory itself.
	Path  string `json:"path"`
	Type  string `json:"type"`
	Mode  uint32 `json:"mode"` // permission, setuid, setgid and sticky bits (07777)
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	MTime int64  `json:"mtime"` // Unix nanoseconds
	CTime int64  `json:"ctime,omitempty"`
	Inode uint64 `json:"inode,omitempty"`
	Dev   uint64 `json:"dev,omitempty"`
	Rdev  uint64 `json:"rdev,omitempty"`
	// Size is the number of content bytes of a regular file.
	Size int64  `json:"size,omitempty"`
	Link string `json:"link,omitempty"` // symlink target
	// Chunks is how many consecutive chunks of the content stream hold the
	// file; Hash is the keyed BLAKE3 of its content. Regular files only.
	Chunks int64     `json:"chunks,omitempty"`
	Hash   *crypt.ID `json:"hash,omitempty"`
}

// ComparePath orders catalogue paths: component by component, each
// compared as bytes, with "." first. A directory sorts before its
// children, and "a/b" before "a.txt".
func ComparePath(a, b string) int {
	if a == b {
		return 0
	}
	if a == "." {
		return -1
	}
	if b == "." {
		return 1
	}
	for {
		ca, ra, moreA := strings.Cut(a, "/")
		cb, rb, moreB := strings.Cut(b, "/")
		if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		switch {
		case !moreA && !moreB:
			return 0
		case !moreA:
			return -1
		case !moreB:
			return 1
		}
		a, b = ra, rb
	}
}

// validPath reports whether p is "." or a clean relative slash path.
func validPath(p string) bool {
	if p == "." {
		return true
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// check validates one node against the node before it (prev is "" for the
// first node).
func (n *Node) check(prev string) error {
	if !validPath(n.Path) {
		return fmt.Errorf("invalid path %q", n.Path)
	}
	if prev == "" && n.Path != "." || prev != "" && ComparePath(prev, n.Path) >= 0 {
		return fmt.Errorf("path %q out of order after %q", n.Path, prev)
	}
	if n.Path == "." && n.Type != NodeDir {
		return fmt.Errorf("the root is a %s, not a directory", n.Type)
	}
	switch n.Type {
	case NodeFile:
		if n.Size < 0 || n.Chunks < 0 || n.Hash == nil {
			return fmt.Errorf("file %q: bad size, chunk count or hash", n.Path)
		}
	case NodeDir, NodeSymlink, NodeFIFO, NodeDevice, NodeCharDevice, NodeSocket:
		if n.Chunks != 0 || n.Hash != nil {
			return fmt.Errorf("%s %q has content", n.Type, n.Path)
		}
	default:
		return fmt.Errorf("node %q has unknown type %q", n.Path, n.Type)
	}
	if n.Mode&^0o7777 != 0 {
		return fmt.Errorf("node %q has mode %o", n.Path, n.Mode)
	}
	return nil
}

// catalogEncoder writes nodes as the catalogue stream: one JSON object per
// line, in canonical order.
type catalogEncoder struct {
	w    *bufio.Writer
	last string
}

func newCatalogEncoder(w io.Writer) *catalogEncoder {
	return &catalogEncoder{w: bufio.NewWriterSize(w, 64<<10)}
}

func (e *catalogEncoder) encode(n *Node) error {
	if err := n.check(e.last); err != nil {
		return err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if len(b)+1 > maxNodeLine {
		return fmt.Errorf("node %q: catalogue line of %d bytes is too long", n.Path, len(b))
	}
	e.last = n.Path
	b = append(b, '\n')
	_, err = e.w.Write(b)
	return err
}

func (e *catalogEncoder) flush() error { return e.w.Flush() }

// catalogDecoder reads a catalogue stream and validates every node.
type catalogDecoder struct {
	r    *bufio.Reader
	last string
	line int
}

func newCatalogDecoder(r io.Reader) *catalogDecoder {
	return &catalogDecoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next node, or io.EOF after the last. A malformed node is
// an error matching ErrCorrupt.
func (d *catalogDecoder) next() (*Node, error) {
	var line []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(line) > maxNodeLine {
				return nil, corrupt(nil, "catalogue line %d is too long", d.line+1)
			}
			continue
		}
		if err == io.EOF {
			if len(line) == 0 {
				if d.line == 0 {
					return nil, corrupt(nil, "the catalogue is empty")
				}
				return nil, io.EOF
			}
			return nil, corrupt(nil, "catalogue line %d is not terminated", d.line+1)
		}
		if err != nil {
			return nil, err
		}
		break
	}
	d.line++
	var n Node
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&n); err != nil {
		return nil, corrupt(err, "catalogue line %d", d.line)
	}
	if err := n.check(d.last); err != nil {
		return nil, corrupt(err, "catalogue line %d", d.line)
	}
	d.last = n.Path
	return &n, nil
}

// ReadCatalog decodes a catalogue stream (FORMAT.md §7.1) and calls fn for
// every node, in order. A malformed catalogue is an error matching
// ErrCorrupt.
func ReadCatalog(r io.Reader, fn func(*Node) error) error {
	d := newCatalogDecoder(r)
	for {
		n, err := d.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(n); err != nil {
			return err
		}
	}
}

// WriteCatalog encodes nodes, which must be in canonical order, as a
// catalogue stream.
func WriteCatalog(w io.Writer, nodes []Node) error {
	e := newCatalogEncoder(w)
	for i := range nodes {
		if err := e.encode(&nodes[i]); err != nil {
			return err
		}
	}
	return e.flush()
}
