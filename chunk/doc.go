// Package chunk is bk's content-defined chunker: it cuts a byte stream into
// variable-sized chunks at positions chosen by the content itself, so an
// insertion or deletion moves only the boundaries near it and the rest of the
// stream still deduplicates against earlier backups.
//
// The only algorithm is "rabin-restic-v0.4": a Rabin fingerprint over a
// 64-byte sliding window (github.com/restic/chunker v0.4.0). A boundary falls
// where the low AverageBits bits of the fingerprint are zero, subject to
// MinSize and MaxSize. Each repository has its own random irreducible
// polynomial of degree 53, stored with the sizes in the repository config as
// [Params]; the polynomial keeps one repository's boundaries from being
// predictable from another's.
//
// Chunk boundaries are part of the repository format: the same Params and
// input must always give the same chunks, or new backups stop deduplicating
// against old ones. The golden test in this package pins them; a change that
// moves a boundary needs a new algorithm name, never a silent update.
package chunk
