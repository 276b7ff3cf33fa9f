// Package store defines the storage seam of bk: the Backend interface that
// every place a repository can live on (local disk, memory, S3) implements,
// the file handles, and the sentinel errors callers test with errors.Is.
//
// The package knows nothing of encryption or of the repository format; it
// moves opaque, immutable files.
package store
