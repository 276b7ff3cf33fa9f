package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// evict drops the files' pages from the page cache, so the next read goes
// to the disk. Each file is flushed first (fdatasync), because the kernel
// drops only clean pages: a repository just written may still be dirty.
func evict(files []string) error {
	var errs []error
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			errs = append(errs, fmt.Errorf("fdatasync %s: %w", name, err))
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			errs = append(errs, fmt.Errorf("fadvise %s: %w", name, err))
		}
		f.Close()
	}
	return errors.Join(errs...)
}
