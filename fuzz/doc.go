// Package fuzz holds the fuzz targets of bk: one for every parser of bytes
// read from a repository (pack headers, index files, tree blobs, key files,
// sealed files, snapshots, the config, chunker parameters and delta
// programs) and round trips that must reproduce their input (chunking,
// delta coding, encoders).
//
// The package has no code besides its tests. go test -fuzz runs one target at
// a time, so run them in a loop:
//
//	for f in $(go test ./fuzz -list 'Fuzz.*' | grep ^Fuzz); do
//		go test ./fuzz -run='^$' -fuzz="^$f\$" -fuzztime=30s || break
//	done
//
// Without -fuzz, go test runs every target over its seed corpus and over
// the inputs saved in testdata/fuzz, which holds every input that once found
// a bug.
package fuzz
