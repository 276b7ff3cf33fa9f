//go:build !linux

package main

import "errors"

// evict is not available here; the cold column of the base fetch is skipped.
func evict([]string) error { return errors.New("page cache eviction needs Linux") }
