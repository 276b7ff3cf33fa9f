// Package redis is the Redis engine: it streams an RDB snapshot of a whole
// Redis server (every logical database) taken over the replication
// protocol, in pure Go, and validates it as it passes.
//
// # Source
//
// redis://[user@]host[:port], port 6379 by default. The URL names no
// database: an RDB file holds them all. TLS (rediss://) is not supported.
//
// # Credentials
//
// URLs carry no password. A password comes, in order, from
// Options.PasswordFile (one line; refused when group- or world-readable),
// then from REDISCLI_AUTH (set but empty is an error), else none. It is sent
// as AUTH [user] password over the engine's own connection: no child
// process runs, so it is never in any argv or environment, and it never
// appears in errors or the manifest. The user needs the INFO, REPLCONF and
// PSYNC commands (ACL: +info +replconf +psync).
//
// # How the snapshot is taken
//
// Dump connects, reads INFO server and INFO keyspace for the manifest, then
// acts like a replica: REPLCONF rdb-only 1 (Redis 7.0+, ignored when
// refused), REPLCONF capa eof, PSYNC ? -1. The server answers +FULLRESYNC,
// newlines as keepalives while it prepares, then the RDB in one of two
// forms, both handled:
//
//   - "$EOF:<40-byte mark>" then the RDB then the mark (diskless sync, the
//     default since Redis 7; it needs capa eof). The server streams from its
//     fork and writes nothing to its disk. It first waits
//     repl-diskless-sync-delay (5 s by default) for other replicas.
//   - "$<length>" then exactly that many bytes (repl-diskless-sync no). The
//     server first writes the RDB into its dir as dbfilename.
//
// capa eof is asked for so that a server with diskless sync on touches no
// disk, which matters for servers run without persistence.
//
// # Proven complete
//
// The stream passes to w through a validator that keeps only the header and
// the last 8 bytes, so memory stays bounded whatever the dataset size. Dump
// returns nil only when the stream had the advertised length (or ended with
// the mark), starts with "REDIS" and a 4-digit version, has the EOF opcode
// 0xFF before its last 8 bytes, and those bytes are the little-endian
// CRC-64/Jones of everything before them. A stored checksum of 0 means the
// server runs with rdbchecksum no: the dump is accepted with a manifest
// warning. Anything else (a short stream, a bad header, a CRC mismatch, a
// server error such as -NOAUTH or -NOPERM, a connection cut) is an error
// wrapping ErrInvalidRDB or the cause, and the caller records no snapshot.
//
// # Manifest
//
// ServerVersion is redis_version. Tool is "rdb" and ToolVersion the RDB
// format version (10 for Redis 7.0, 11 for 7.2, 12 for 7.4): a server older
// than the file's format cannot load it. Tables has one entry per logical
// database ("db0", ...) whose Rows is its key count from INFO keyspace,
// taken just before the sync and so flagged as an estimate.
//
// Keyspace has the exact counts at fork time: as the RDB passes, a second
// reader walks its structure (opcodes, and each value skipped by its length
// prefixes, never decoded or held in memory) and counts the key-value
// pairs of each database and those preceded by an expiry opcode. The
// RESIZEDB opcode's db_size and expires_size are cross-checked against
// them; a difference is a manifest warning. A structure the walker does not
// know (a newer RDB format, module values of the pre-release format) loses
// only the counts: Keyspace stays nil, a warning says why, and the dump is
// still judged by its CRC. Keys returns Keyspace's total, or else sums the
// estimates.
//
// # Restore drills
//
// Scratch loads a snapshot into a throwaway redis-server (bk check
// --restore-test): the RDB is written as dump.rdb into a temporary
// directory and checked again, the server starts on a free loopback port
// with persistence off, and once INFO persistence says loading:0 its INFO
// keyspace counts are compared with Keyspace. Keys whose expiry passed are
// dropped by the load, so a database may hold between Keys-Expires and Keys
// keys. Drop kills the server and removes the directory.
//
// # Putting a restored dump.rdb in place
//
// Redis restores to a file: bk restore SNAPSHOT --target DIR writes the RDB.
// To load it into a server:
//
//  1. Find the server's directory and file name:
//     redis-cli CONFIG GET dir and redis-cli CONFIG GET dbfilename
//     (usually /var/lib/redis and dump.rdb).
//  2. Stop the server (systemctl stop redis-server) before copying: a
//     running server overwrites dbfilename at its next save or at shutdown,
//     and never rereads it while running.
//  3. If appendonly is yes, the AOF wins over the RDB at startup: move the
//     appendonly directory or file away, and set appendonly no for the first
//     start (turn it back on afterwards with CONFIG SET appendonly yes, which
//     rewrites the AOF from the loaded data).
//  4. Copy the file into dir as dbfilename, owned by the redis user, mode
//     0640 or stricter: install -o redis -g redis -m 0640 DIR/dump.rdb
//     /var/lib/redis/dump.rdb
//  5. Start the server and check: redis-cli INFO keyspace against the key
//     counts in the snapshot's manifest.
//
// The server must be the same or a newer version than the RDB format needs
// (see ToolVersion above). To try a dump without touching a server, run a
// throwaway one:
//
//	redis-server --port 6390 --dir DIR --dbfilename dump.rdb --save "" --appendonly no
package redis
