package dir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// WriterOptions control a Writer.
type WriterOptions struct {
	// Owner restores UID/GID (lchown). Nil means: only when running as
	// root (os.Geteuid() == 0).
	Owner *bool
}

// Writer recreates entries under a target directory. Entries are expected
// in canonical order (as Walk emits them) but any order works: a missing
// parent directory is created 0700. A Writer is not safe for concurrent
// use. A failed Put does not poison the Writer; the caller decides whether
// to go on (ErrSkipped in particular is usually not fatal).
type Writer struct {
	target string
	fd     int // the target directory
	owner  bool
	mknod  bool // running as root: try to create device nodes
	dirs   []dirMeta
	closed bool
}

// dirMeta is what Close applies to a directory.
type dirMeta struct {
	path     string
	mode     uint32
	uid, gid uint32
	mtime    int64
}

// NewWriter creates target (mode 0700, with parents) if missing and
// returns a Writer for it. target may already exist and hold files; a
// symlink named as target is followed (it is the caller's choice), but no
// symlink below it ever is.
func NewWriter(target string, opts WriterOptions) (*Writer, error) {
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, fmt.Errorf("restore %s: %w", target, err)
	}
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", target, err)
	}
	root := os.Geteuid() == 0
	owner := root
	if opts.Owner != nil {
		owner = *opts.Owner
	}
	return &Writer{target: target, fd: fd, owner: owner, mknod: root}, nil
}

// Put recreates one entry under the target.
//
//   - File: all of content is written (nil means empty; Put does not check
//     e.Size, the caller verifies content) to a temporary file in the same
//     directory, which gets owner, mode and mtime, is fsynced and is renamed
//     onto the final name, replacing an existing non-directory. A crash never
//     leaves a half-written file under the final name; on error the temporary
//     file is removed.
//   - Dir: mkdir with mode 0700 (an existing directory is fine; an existing
//     non-directory of that name is removed). Its mode, owner and mtime are
//     applied in Close. "." stands for the target itself.
//   - Symlink, FIFO: created under a temporary name and renamed onto the
//     final name, replacing an existing non-directory.
//   - Device, CharDevice: mknod when running as root; otherwise, or when
//     mknod is not permitted, an error wrapping ErrSkipped.
//   - Socket: an error wrapping ErrSkipped.
//
// Modes are applied with chmod (mask 07777, not for symlinks), mtimes with
// utimensat(AT_SYMLINK_NOFOLLOW) leaving atime as is, ownership with
// lchown when enabled. Missing parent directories are created 0700.
//
// Put rejects paths that are absolute or contain empty, "." or ".."
// components or NUL, and never writes through a symlink: every parent
// component under the target is opened with O_NOFOLLOW|O_DIRECTORY, so a
// parent that is a symlink or not a directory makes Put fail. Errors name
// the entry path.
func (w *Writer) Put(e Entry, content io.Reader) error {
	if err := w.put(e, content); err != nil {
		return fmt.Errorf("restore %s: %w", e.Path, err)
	}
	return nil
}

func (w *Writer) put(e Entry, content io.Reader) error {
	if w.closed {
		return os.ErrClosed
	}
	comps, err := splitPath(e.Path)
	if err != nil {
		return err
	}
	switch e.Type {
	case File, Dir, Symlink, FIFO:
	case Device, CharDevice:
		if !w.mknod {
			return fmt.Errorf("%s needs root: %w", e.Type, ErrSkipped)
		}
	case Socket:
		return fmt.Errorf("%s: %w", e.Type, ErrSkipped)
	default:
		return fmt.Errorf("unknown entry type %q", e.Type)
	}
	if len(comps) == 0 {
		if e.Type != Dir {
			return fmt.Errorf("the root must be a directory, not %s", e.Type)
		}
		w.dirs = append(w.dirs, dirMeta{".", e.Mode & 0o7777, e.UID, e.GID, e.MTime})
		return nil
	}
	pfd, err := openDirs(w.fd, comps[:len(comps)-1], true)
	if err != nil {
		return fmt.Errorf("parent %w", err)
	}
	defer unix.Close(pfd)
	name := comps[len(comps)-1]
	switch e.Type {
	case Dir:
		if err := mkdirAt(pfd, name); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		w.dirs = append(w.dirs, dirMeta{e.Path, e.Mode & 0o7777, e.UID, e.GID, e.MTime})
		return nil
	case File:
		return w.putFile(pfd, name, e, content)
	default:
		return w.putNode(pfd, name, e)
	}
}

// mkdirAt makes the directory name in pfd, keeping an existing directory
// and replacing an existing non-directory.
func mkdirAt(pfd int, name string) error {
	err := unix.Mkdirat(pfd, name, 0o700)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err := unix.Unlinkat(pfd, name, 0); err != nil {
		return fmt.Errorf("replace non-directory: %w", err)
	}
	return unix.Mkdirat(pfd, name, 0o700)
}

// tmpName returns a fresh name for a temporary entry. It is short so that
// it fits NAME_MAX whatever the final name is.
func tmpName() string {
	var b [8]byte
	rand.Read(b[:])
	return ".bk-tmp-" + hex.EncodeToString(b[:])
}

// create calls mk with fresh temporary names until one does not exist yet.
func create(mk func(tmp string) error) (string, error) {
	for range 100 {
		tmp := tmpName()
		err := mk(tmp)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return tmp, err
	}
	return "", errors.New("no free temporary name")
}

func (w *Writer) putFile(pfd int, name string, e Entry, content io.Reader) (err error) {
	var fd int
	tmp, err := create(func(tmp string) (err error) {
		fd, err = unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			unix.Unlinkat(pfd, tmp, 0)
		}
	}()
	if content != nil {
		if _, err := io.Copy(f, content); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if w.owner {
		if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, e.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := setMtime(pfd, tmp, e.MTime); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := unix.Renameat(pfd, tmp, pfd, name); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// putNode creates a symlink, FIFO or device node under a temporary name,
// sets its metadata and renames it onto name.
func (w *Writer) putNode(pfd int, name string, e Entry) (err error) {
	tmp, err := create(func(tmp string) error {
		switch e.Type {
		case Symlink:
			return unix.Symlinkat(e.Link, pfd, tmp)
		case FIFO:
			return unix.Mknodat(pfd, tmp, unix.S_IFIFO|0o600, 0)
		case Device:
			return unix.Mknodat(pfd, tmp, unix.S_IFBLK|0o600, int(e.Rdev))
		default: // CharDevice
			return unix.Mknodat(pfd, tmp, unix.S_IFCHR|0o600, int(e.Rdev))
		}
	})
	if err != nil {
		if (e.Type == Device || e.Type == CharDevice) && errors.Is(err, unix.EPERM) {
			return fmt.Errorf("mknod %s: %w: %w", e.Type, ErrSkipped, err)
		}
		return fmt.Errorf("create %s: %w", e.Type, err)
	}
	defer func() {
		if err != nil {
			unix.Unlinkat(pfd, tmp, 0)
		}
	}()
	if w.owner {
		if err := unix.Fchownat(pfd, tmp, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lchown: %w", err)
		}
	}
	if e.Type != Symlink {
		// tmp is a node this call just made in a directory reached
		// without symlinks; fchmodat cannot follow anything here.
		if err := unix.Fchmodat(pfd, tmp, e.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := setMtime(pfd, tmp, e.MTime); err != nil {
		return err
	}
	if err := unix.Renameat(pfd, tmp, pfd, name); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// setMtime sets the mtime of name in dirfd without following a symlink,
// leaving atime as is.
func setMtime(dirfd int, name string, mtime int64) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// Close applies the owner, mode and mtime of every directory Put, deepest
// first, syncs the target's file system, and releases the Writer. It
// tries every directory and reports the first error, naming the path.
// Put and Close fail after Close.
func (w *Writer) Close() error {
	if w.closed {
		return fmt.Errorf("restore %s: %w", w.target, os.ErrClosed)
	}
	w.closed = true
	defer unix.Close(w.fd)
	// Reverse canonical order puts every directory before its parent.
	slices.SortStableFunc(w.dirs, func(a, b dirMeta) int { return ComparePath(b.path, a.path) })
	var first error
	for _, d := range w.dirs {
		if err := w.applyDir(d); err != nil && first == nil {
			first = fmt.Errorf("restore %s: %w", d.path, err)
		}
	}
	w.dirs = nil
	if err := unix.Syncfs(w.fd); err != nil && first == nil {
		first = fmt.Errorf("restore %s: syncfs: %w", w.target, err)
	}
	return first
}

// applyDir sets a directory's owner, mode and mtime through a descriptor
// reached without following symlinks.
func (w *Writer) applyDir(d dirMeta) error {
	comps, err := splitPath(d.path)
	if err != nil {
		return err
	}
	fd, err := openDirs(w.fd, comps, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if w.owner {
		if err := unix.Fchown(fd, int(d.uid), int(d.gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, d.mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	// "." names the directory fd itself.
	return setMtime(fd, ".", d.mtime)
}
