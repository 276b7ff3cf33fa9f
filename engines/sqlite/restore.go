package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Restore writes the database file r to the engine's path: into a 0600
// temporary file next to the target, fsynced, checked (header and PRAGMA
// integrity_check), then renamed into place and the directory fsynced. A
// target that exists is refused unless force; with force it is replaced
// (keeping its permission bits) and its stale -wal, -shm and -journal files
// are removed first, since SQLite would otherwise apply an old WAL to the new
// file. Nothing may have the target open while it is replaced. On any error
// the target is left untouched.
func (e *Engine) Restore(ctx context.Context, r io.Reader, force bool) error {
	perm := os.FileMode(0o600)
	fi, err := os.Lstat(e.path)
	switch {
	case err == nil && !force:
		return fmt.Errorf("sqlite: restore to %s: %w; use --force to replace it", e.path, ErrExists)
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("sqlite: restore to %s: it exists and is not a regular file", e.path)
	case err == nil:
		perm = fi.Mode().Perm()
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	dir := filepath.Dir(e.path)
	tmp, err := os.CreateTemp(dir, ".bk-restore-*.db")
	if err != nil {
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	name := tmp.Name()
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return fmt.Errorf("sqlite: restore to %s: read dump: %w", e.path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	if err := e.verify(ctx, name); err != nil {
		return fmt.Errorf("sqlite: restore to %s: the dump is not a sound database: %w", e.path, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	if force {
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(e.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sqlite: restore to %s: remove stale %s: %w", e.path, suffix, err)
			}
		}
	}
	if err := os.Rename(name, e.path); err != nil {
		return fmt.Errorf("sqlite: restore to %s: %w", e.path, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sqlite: restore to %s: sync directory: %w", e.path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
