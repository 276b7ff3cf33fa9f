package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Options control Walk.
type Options struct {
	// OneFileSystem stops Walk from descending into a directory on another
	// device than the root. The mount point itself is still reported.
	OneFileSystem bool
	// Exclude, when not nil, is called for every entry below the root with
	// its path and whether it is a directory; an excluded entry is not
	// reported and an excluded directory is not descended. It is never
	// called for the root.
	Exclude func(path string, isDir bool) bool
}

// dirFlags open a directory without following a symlink in its place.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// Walk calls fn for the root (".") and every entry under root in canonical
// order: depth-first pre-order, children sorted by name bytes, so paths are
// strictly increasing under ComparePath. fn is called from the calling
// goroutine, one entry at a time.
//
// root must be a directory; if root itself is a symlink Walk fails. Below
// the root Walk uses lstat and never follows a symlink, and it opens each
// directory relative to its parent's descriptor with O_NOFOLLOW, so a
// directory replaced by a symlink during the walk is not followed. An entry
// that vanishes between readdir and lstat is skipped, and so are the
// children of a directory that vanishes or is replaced after it was
// reported. An unreadable directory or any other error returns an error
// naming the path. Walk returns ctx.Err() once ctx is done, and fn's error
// unchanged.
//
// Memory is bounded by the depth times the widest directory, not by the
// tree size; Walk holds one open descriptor per level of depth.
func Walk(ctx context.Context, root string, opts Options, fn func(Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := unix.Open(root, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("walk %s: %w", root, notDir(err))
	}
	f := os.NewFile(uintptr(fd), root)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("walk %s: %w", root, err)
	}
	e, err := entryOf(".", &st, "")
	if err != nil {
		return fmt.Errorf("walk %s: %w", root, err)
	}
	if err := fn(e); err != nil {
		return err
	}
	w := &walker{ctx: ctx, root: root, opts: opts, fn: fn, rootDev: e.Dev}
	return w.dir(f, fd, ".")
}

// notDir explains the errors open(O_DIRECTORY|O_NOFOLLOW) gives for a
// symlink.
func notDir(err error) error {
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("not a directory (symlink): %w", err)
	}
	return err
}

type walker struct {
	ctx     context.Context
	root    string
	opts    Options
	fn      func(Entry) error
	rootDev uint64
}

// name returns the path of rel for error messages.
func (w *walker) name(rel string) string {
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// dir reports the children of the open directory f (descriptor fd, entry
// path rel) and descends into subdirectories.
func (w *walker) dir(f *os.File, fd int, rel string) error {
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("walk %s: read directory: %w", w.name(rel), err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		p := name
		if rel != "." {
			p = rel + "/" + name
		}
		e, ok, err := lstatAt(fd, name, p)
		if err != nil {
			return fmt.Errorf("walk %s: %w", w.name(p), err)
		}
		if !ok {
			continue // vanished since readdir
		}
		if w.opts.Exclude != nil && w.opts.Exclude(p, e.Type == Dir) {
			continue
		}
		if err := w.fn(e); err != nil {
			return err
		}
		if e.Type != Dir || (w.opts.OneFileSystem && e.Dev != w.rootDev) {
			continue
		}
		if err := w.descend(fd, name, e); err != nil {
			return err
		}
	}
	return nil
}

// descend walks the directory e, the child name of the directory parent.
// A directory that vanished or was replaced since its lstat is skipped.
func (w *walker) descend(parent int, name string, e Entry) error {
	fd, err := unix.Openat(parent, name, dirFlags, 0)
	if isGone(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walk %s: %w", w.name(e.Path), err)
	}
	f := os.NewFile(uintptr(fd), w.name(e.Path))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("walk %s: %w", w.name(e.Path), err)
	}
	if st.Ino != e.Inode || st.Dev != e.Dev {
		return nil // replaced by another directory since its lstat
	}
	return w.dir(f, fd, e.Path)
}

// isGone reports whether err means an entry vanished or stopped being a
// directory (ENOTDIR, or ELOOP for a symlink opened with O_NOFOLLOW).
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

// lstatAt describes the child name of the directory dirfd, with entry path
// p. ok is false, with a nil error, when the entry no longer exists.
func lstatAt(dirfd int, name, p string) (e Entry, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Entry{}, false, nil
		}
		return Entry{}, false, fmt.Errorf("lstat: %w", err)
	}
	var link string
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		link, err = readlinkAt(dirfd, name)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			return Entry{}, false, nil // gone, or no longer a symlink
		}
		if err != nil {
			return Entry{}, false, fmt.Errorf("readlink: %w", err)
		}
	}
	e, err = entryOf(p, &st, link)
	return e, err == nil, err
}

// readlinkAt reads the target of the symlink name in the directory dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// entryOf converts a stat result into an Entry.
func entryOf(p string, st *unix.Stat_t, link string) (Entry, error) {
	e := Entry{
		Path:  p,
		Mode:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		MTime: st.Mtim.Nano(),
		CTime: st.Ctim.Nano(),
		Inode: st.Ino,
		Dev:   st.Dev,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = File
		e.Size = st.Size
	case unix.S_IFDIR:
		e.Type = Dir
	case unix.S_IFLNK:
		e.Type = Symlink
		e.Link = link
	case unix.S_IFIFO:
		e.Type = FIFO
	case unix.S_IFBLK:
		e.Type = Device
		e.Rdev = st.Rdev
	case unix.S_IFCHR:
		e.Type = CharDevice
		e.Rdev = st.Rdev
	case unix.S_IFSOCK:
		e.Type = Socket
	default:
		return Entry{}, fmt.Errorf("unknown file type %#o", st.Mode&unix.S_IFMT)
	}
	return e, nil
}

// openDirs opens the directory reached from dirfd through comps, one
// component at a time with O_NOFOLLOW, so no symlink is followed. With
// create, a missing directory is created with mode 0700. The caller closes
// the returned descriptor.
func openDirs(dirfd int, comps []string, create bool) (int, error) {
	fd, err := unix.Openat(dirfd, ".", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	for i, c := range comps {
		next, err := unix.Openat(fd, c, dirFlags, 0)
		if create && errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, c, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, c, dirFlags, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				err = fmt.Errorf("%w (symlink or not a directory)", err)
			}
			return -1, fmt.Errorf("%s: %w", strings.Join(comps[:i+1], "/"), err)
		}
		fd = next
	}
	return fd, nil
}

// Open opens the regular file e under root for reading. It resolves every
// component of e.Path without following symlinks (O_NOFOLLOW), opens with
// O_NOATIME where permitted (falling back without it on EPERM) and
// O_NONBLOCK (so a FIFO swapped in cannot block), and fails if what it
// opened is no longer a regular file. The returned file is in blocking
// mode; the caller closes it.
func Open(root string, e Entry) (*os.File, error) {
	comps, err := splitPath(e.Path)
	if err == nil && len(comps) == 0 {
		err = errors.New("the root is not a regular file")
	}
	if err != nil {
		return nil, fmt.Errorf("open %q under %s: %w", e.Path, root, err)
	}
	name := filepath.Join(root, filepath.FromSlash(e.Path))
	if e.Type != File {
		return nil, fmt.Errorf("open %s: entry is a %s, not a file", name, e.Type)
	}
	rootfd, err := unix.Open(root, dirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: root: %w", name, notDir(err))
	}
	pfd, err := openDirs(rootfd, comps[:len(comps)-1], false)
	unix.Close(rootfd)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer unix.Close(pfd)
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	last := comps[len(comps)-1]
	fd, err := unix.Openat(pfd, last, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(pfd, last, flags, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = fmt.Errorf("not a regular file (symlink): %w", err)
		}
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: no longer a regular file (mode %#o)", name, st.Mode&unix.S_IFMT)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
