// Package cache wraps a store.Backend with a local, on-disk cache of the
// small files a repository reads whole on every run: snapshots, indexes and
// keys. Those files are immutable and named by the hash of their bytes, so a
// cached copy is verified against its name before use; a cache that is
// stale, corrupt or deleted costs a download, never a wrong answer. With it,
// opening a remote repository costs a listing plus the files that are new
// since the last run.
package cache
