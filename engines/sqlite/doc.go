// Package sqlite is the SQLite engine: it streams one database file, copied
// consistently while writers are active, and restores it by writing the file
// back into place. It drives the sqlite3 shell; bk links no SQLite library.
//
// # Source
//
// The URL is sqlite:///abs/path/to.db. Dump requires an existing regular
// file that starts with the 16-byte header "SQLite format 3\x00", checked by
// bk before sqlite3 runs, and opens it with mode=rw so that nothing ever
// creates an empty database in its place.
//
// # Dump format: the database file
//
// The stream is the database file as VACUUM INTO writes it, not .dump SQL.
// VACUUM INTO reads the source in a single read transaction, so writers in
// WAL or rollback mode (waited for up to a minute) never tear the copy, and,
// unlike the step-wise backup API, a busy writer cannot make it restart
// forever. Its output is compact and in rowid order, in rollback-journal
// mode, with user_version and application_id kept; the order of
// sqlite_schema may change (tables before indexes).
//
// The file is exact (every type, the schema and header fields), restores by
// copy and opens with any SQLite; SQL text would need a replay. It also
// dedups no worse: on a 23 MB table (100k rows, 512 KiB average chunks) a
// second night after changing 1% of rows adds 393 KB for the file against
// 1.8 MB for .dump SQL when the rows are clustered, and 88% against 100% of
// the stream when they are spread at random (each 4 KiB page or SQL line
// changed touches a chunk, so scattered updates defeat both).
// TestMeasureFormat (BK_SQLITE_MEASURE=1) repeats the measurement.
//
// # Proven complete
//
// The copy is made in a 0700 temporary directory (Options.TempDir) as a
// 0600 file, and removed on every outcome. Dump returns nil only when
// VACUUM INTO succeeded, the copy has the SQLite header, PRAGMA
// integrity_check on it prints exactly "ok", and every byte of it reached
// the writer. A source SQLite finds malformed while copying, and a copy that
// fails the check, match ErrCorrupt; the error quotes sqlite3 or the
// check's first lines. VACUUM INTO rebuilds indexes, so a source whose only
// damage is in an index yields a sound copy.
//
// # Manifest
//
// The manifest records sqlite_version() as the server version, the sqlite3
// shell's version, the database path, and exact count(*) row counts of every
// ordinary table of the copy (virtual tables are left out; their shadow
// tables are counted), so the counts describe the stored bytes.
//
// # Restore
//
// Restore writes the stream to a 0600 temporary file next to the target,
// fsyncs it, checks the header and integrity_check, renames it into place
// and fsyncs the directory. An existing target is refused (ErrExists) unless
// force; with force its permission bits are kept and its -wal, -shm and
// -journal files are removed, so nothing may have it open meanwhile.
package sqlite
