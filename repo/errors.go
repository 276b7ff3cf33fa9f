package repo

import (
	"errors"
	"fmt"

	"github.com/bk-backup/bk/crypt"
)

// Sentinel errors. Besides these, callers test for store.ErrNotFound (no
// repository) and crypt.ErrWrongPassword.
var (
	// ErrCorrupt marks data that failed verification: a bad MAC, a hash that
	// does not match its name, or a structure that does not parse.
	ErrCorrupt = errors.New("repository data is corrupt")
	// ErrLocked means another process holds a conflicting lock.
	ErrLocked = errors.New("repository is locked")
	// ErrNewerFormat means the repository was written by a newer bk.
	ErrNewerFormat = errors.New("repository format is newer than this bk")
	// ErrNotStream means a directory snapshot was asked for as one stream.
	ErrNotStream = errors.New("not a stream snapshot")
	// ErrEmpty means a stream had no bytes and empty streams were not allowed.
	ErrEmpty = errors.New("stream is empty")
	// ErrShrunk means a stream shrank to less than half of the previous good
	// snapshot of its source and the caller asked to treat that as failure.
	ErrShrunk = errors.New("the dump shrank to less than half of the previous one")
	// ErrNoMatch means no snapshot or key matched an ID, prefix or filter.
	ErrNoMatch = errors.New("no match")
	// ErrExists means init found a repository already there.
	ErrExists = errors.New("a repository already exists there")
)

// BlobError reports a blob that failed to load or verify, naming its pack.
type BlobError struct {
	Pack crypt.ID
	Blob crypt.ID
	Err  error
}

func (e *BlobError) Error() string {
	return fmt.Sprintf("pack %s, blob %s: %v", e.Pack, e.Blob, e.Err)
}

// Unwrap returns the cause.
func (e *BlobError) Unwrap() error { return e.Err }

// corrupt wraps a cause as ErrCorrupt with a description.
func corrupt(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", msg, ErrCorrupt, err)
	}
	return fmt.Errorf("%s: %w", msg, ErrCorrupt)
}
