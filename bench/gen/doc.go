// Package gen generates the benchmark input of bk: a deterministic,
// pg_dump-like plain SQL dump of a configurable size, and an edited copy of
// it in which about one row in a hundred was changed, inserted or deleted.
//
// The dump has what real ones have: a header of SET statements, CREATE
// TABLE and sequence statements, one COPY block of tab-separated rows per
// table (ids, names, e-mail addresses, timestamps, hex digests, amounts,
// jsonb documents) ended by `\.`, and the indexes and constraints at the
// end. Its columns mix sequences, skewed vocabularies and random digests so
// that it compresses about as well as a real dump does.
//
// Both streams come out of one pass with bounded memory. The same pass
// compresses the changed and inserted rows alone, which gives the ideal size
// of an incremental backup of the edited copy (Stats.IdealBytes).
//
// Edit applies one day of changes to an existing dump stream, seeded, so
// that applying it to its own output gives successive nights of a database.
package gen
