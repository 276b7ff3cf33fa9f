// Package mem is an in-memory store.Backend for tests and benchmarks.
//
// It keeps every file in a map, copies data on Put and on Get so no caller
// can alias the stored bytes, and is safe for concurrent use. Nothing
// survives the process.
package mem
