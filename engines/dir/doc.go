// Package dir walks a directory tree in canonical order for snapshots and
// recreates entries under a target for restores. It is the file-system side
// of directory and volume snapshots and knows nothing of repositories.
//
// # Canonical order
//
// Entry paths are slash-separated and relative to the walked root; "." is
// the root itself. ComparePath orders them component by component, each
// component compared as bytes, so a directory comes before its children and
// "a/b" comes before "a.txt". Walk emits entries in exactly this order
// (depth-first pre-order, children sorted by name), and a restore of that
// stream puts every directory before its children.
//
// # Symlinks
//
// Neither side ever follows a symlink below the root or target. Walk and
// Open resolve every path component with openat(O_NOFOLLOW|O_DIRECTORY)
// from the root's descriptor, so a directory swapped for a symlink during a
// snapshot is not followed. Writer does the same from the target's
// descriptor, so a snapshot holding the symlink "a" -> /etc and then the
// file "a/passwd" fails for "a/passwd" instead of writing /etc/passwd.
//
// # Restores
//
// Writer creates every non-directory entry under a temporary name in its
// final directory, sets its owner, mode and mtime, fsyncs a regular file,
// and renames it onto its final name, so a crash never leaves a half-written
// file under the final name and an existing file is replaced atomically.
// Directories are created 0700; their own mode, owner and mtime are applied
// by Close, deepest first, so a read-only directory does not block its
// children and creating a child does not disturb a restored mtime. Close
// also syncs the target's file system.
package dir
