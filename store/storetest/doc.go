// Package storetest is the conformance suite every store.Backend passes.
//
// A backend's tests call Run with a function that returns a fresh, empty
// backend; Run checks the whole contract written on store.Backend: put, get,
// stat, list and delete of every file type, ranged reads, ErrNotFound,
// list after write and after delete, atomic and size-checked puts, rejection
// of invalid handles, and concurrent use (run the tests with -race). Bench
// measures the common operations the same way for every backend.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend { return mem.New() })
//	}
package storetest
