// Package postgres is the PostgreSQL engine: it streams one database as a
// plain SQL dump made by the server's pg_dump, and loads such a dump straight
// back with psql.
//
// # Dump format
//
// The stream is pg_dump --format=plain. Plain SQL is text in a stable order,
// so a night's change to a few rows changes a few lines and bk's
// content-defined chunks dedup the rest; the bench measured it within 5% of
// --format=custom -Z0, and plain can be read, grepped and loaded by psql
// without bk. bk compresses chunks itself, so pg_dump never compresses.
// pg_dump 15.14 and later put a random \restrict key on the first and last
// lines; that costs one changed chunk at each end, no more.
//
// # Proven complete
//
// Dump returns a nil error only when pg_dump exited 0, wrote at least one
// byte, and the stream ends with the completion trailer
// "-- PostgreSQL database dump complete" (optionally followed by comment
// lines and the \unrestrict line). The stream is never buffered in a temp
// file: a small tail of what passed through is kept for the trailer check.
// Restore applies the same check to its input and kills psql before it can
// commit a truncated stream.
//
// # Credentials
//
// URLs carry no password. A password comes, in order, from
// Options.PasswordFile (which must not be group- or world-readable), from
// libpq's own PGPASSFILE or ~/.pgpass (left to pg_dump), or from PGPASSWORD
// (an empty PGPASSWORD is an error). Note that libpq itself prefers
// PGPASSWORD to a pgpass file; bk does not change that. A password from
// PasswordFile reaches pg_dump and psql only through a temporary 0600
// PGPASSFILE removed when the child exits, never through argv, and never
// appears in errors or the manifest.
//
// # Manifest
//
// The manifest records the server version, the pg_dump version (with a
// warning when its major version is older than the server's), the database
// and per-table row counts. The counts are n_live_tup from
// pg_stat_user_tables, flagged as estimates: an exact count(*) reads every
// table in full, too costly for big databases.
package postgres
