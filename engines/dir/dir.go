package dir

import (
	"errors"
	"fmt"
	"strings"
)

// Type is the kind of a file system object.
type Type string

// The entry types. These names are stored in snapshots; they must not change.
const (
	File       Type = "file"
	Dir        Type = "dir"
	Symlink    Type = "symlink"
	FIFO       Type = "fifo"
	Device     Type = "device"     // block device
	CharDevice Type = "chardevice" // character device
	Socket     Type = "socket"
)

// Entry describes one file system object.
type Entry struct {
	Path  string // slash-separated, relative to the root; "." is the root directory itself
	Type  Type
	Mode  uint32 // permission bits plus setuid/setgid/sticky in Unix form (mask 07777)
	UID   uint32
	GID   uint32
	MTime int64  // Unix nanoseconds
	CTime int64  // Unix nanoseconds
	Inode uint64 // st_ino
	Dev   uint64 // st_dev of the file system holding it
	Rdev  uint64 // device number, for Device and CharDevice; 0 otherwise
	Size  int64  // regular files: byte size at lstat time; 0 for every other type
	Link  string // symlink target; empty for every other type
}

// ErrSkipped marks an entry type that cannot be recreated here: a socket
// always, a device node when not running as root or when mknod is not
// permitted. Writer.Put wraps it with the entry's path.
var ErrSkipped = errors.New("entry type not restorable here")

// ComparePath orders two entry paths canonically: component by component,
// each component compared as bytes; "." sorts before everything. A directory
// sorts before its children, and "a/b" < "a.txt" (because component "a" <
// "a.txt"). It returns -1, 0 or +1.
func ComparePath(a, b string) int {
	if a == "." {
		a = ""
	}
	if b == "." {
		b = ""
	}
	for {
		switch {
		case a == "" && b == "":
			return 0
		case a == "":
			return -1
		case b == "":
			return 1
		}
		var ca, cb string
		ca, a, _ = strings.Cut(a, "/")
		cb, b, _ = strings.Cut(b, "/")
		if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
	}
}

// splitPath checks an entry path and returns its components; "." (the
// root) has none. It rejects what could leave the root or is ambiguous:
// absolute paths, empty, "." and ".." components, and NUL bytes.
func splitPath(p string) ([]string, error) {
	switch {
	case p == ".":
		return nil, nil
	case p == "":
		return nil, errors.New("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return nil, errors.New("path contains NUL")
	case p[0] == '/':
		return nil, errors.New("absolute path")
	}
	comps := strings.Split(p, "/")
	for _, c := range comps {
		switch c {
		case "":
			return nil, errors.New("empty path component")
		case ".", "..":
			return nil, fmt.Errorf("path component %q", c)
		}
	}
	return comps, nil
}
