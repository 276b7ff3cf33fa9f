// Package engines holds the sources bk backs up. Each engine lives in its own
// package under engines/ and produces one consistent stream with Dump; the
// engine knows nothing of repositories. cmd/bk joins a dump to a repository
// through an io.Pipe, so a failed dump reaches the snapshot as an error and
// no snapshot is recorded.
package engines
