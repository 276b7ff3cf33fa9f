// Package mysql is the engine for MariaDB and MySQL: it streams a logical
// dump made by mariadb-dump (or mysqldump) and loads one back through the
// mariadb (or mysql) client.
//
// # Sources
//
// A source is mysql://[user@]host[:port]/dbname or the same with the mariadb
// scheme; /* instead of a database name dumps every database
// (--all-databases). A URL that carries a password is refused.
//
// # Credentials
//
// The password comes, in order, from Options.PasswordFile (which must not be
// group- or world-readable), from ~/.my.cnf (read by the client itself; bk
// then supplies no password), or from MYSQL_PWD in the environment (set but
// empty is an error). bk writes it to a 0600 option file in a 0700 temporary
// directory, passes that file to the child as its first argument
// (--defaults-extra-file must come first), strips MYSQL_PWD from the child's
// environment, and removes the directory when the child has exited. The
// password is never in argv, the child's environment or an error message.
//
// # Proving a dump complete
//
// Dump returns nil only when the tool exited with status 0, wrote at least one
// byte, and the last line of the stream is mariadb-dump's "-- Dump completed"
// trailer, which the tool writes only after everything else. A dump that was
// killed, cut short or failed half-way is an error, quoting the last lines of
// the tool's stderr.
//
// # Manifest
//
// The manifest records the server version (SELECT VERSION()), the dump tool
// and its version, the database and a row count per base table. The counts
// come from information_schema.TABLES.TABLE_ROWS and are flagged as
// estimates: for InnoDB that column is the optimizer's sampled statistic, not
// an exact count, and an exact COUNT(*) would scan every table and, outside
// the dump's own transaction, would not even describe the same snapshot.
//
// # Restore
//
// Restore creates the target database when it is missing, refuses one that
// already holds tables, views, routines or events unless forced (with /*, any
// database other than the system ones counts), and feeds the stream to the
// client, which stops at the first SQL error. The error quotes the client's
// stderr, which names the failing line. A failed restore leaves whatever was
// loaded before the error in place.
package mysql
