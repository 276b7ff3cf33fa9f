package engines

import (
	"context"
	"io"
)

// Engine produces one consistent stream of a source and loads it back.
//
// Dump writes the whole stream to w and returns nil only when the dump is
// proven complete (exit status, trailer, checksum or integrity check, as the
// engine allows); any other outcome is an error and the caller records no
// snapshot. Dump is called once, from one goroutine. Credentials reach child
// processes only through 0600 temporary files, pipes or the environment,
// never argv, and never appear in errors.
type Engine interface {
	// Name is the engine's name, recorded in the manifest ("postgres", ...).
	Name() string
	// Source describes the source for snapshot metadata, without secrets
	// (e.g. "postgres://backup@127.0.0.1:5432/app").
	Source() string
	Dump(ctx context.Context, w io.Writer) (*Manifest, error)
}

// Restorer is an Engine that can load a dump straight back into a target.
type Restorer interface {
	// Restore loads the stream r into the target named by the engine's URL.
	// It creates a missing target, refuses a non-empty one unless force, and
	// stops at the first error.
	Restore(ctx context.Context, r io.Reader, force bool) error
}

// Manifest describes a dump, for the snapshot's metadata.
type Manifest struct {
	Engine        string  `json:"engine"`
	ServerVersion string  `json:"server_version,omitempty"`
	Tool          string  `json:"tool,omitempty"`
	ToolVersion   string  `json:"tool_version,omitempty"`
	Database      string  `json:"database,omitempty"`
	Tables        []Table `json:"tables,omitempty"`
	// Keyspace holds the exact key counts of a Redis snapshot, read from
	// the RDB file itself and so the state at fork time. It is nil when the
	// engine is not Redis or could not count (an RDB it cannot parse; a
	// warning then says why), and non-nil with zero keys for an empty
	// server.
	Keyspace *Keyspace `json:"keyspace,omitempty"`
	// Warnings are things the operator should know (an old dump tool, ...).
	Warnings []string `json:"warnings,omitempty"`
}

// Keyspace counts the keys of a Redis snapshot.
type Keyspace struct {
	// Keys is the number of keys in every logical database together.
	Keys int64 `json:"keys"`
	// Expires is how many of Keys carry an expiry. A key whose expiry has
	// passed is dropped when the snapshot is loaded, so a restore holds
	// between Keys-Expires and Keys keys.
	Expires int64 `json:"expires"`
	// DBs has one entry per non-empty logical database, by number.
	DBs []KeyspaceDB `json:"dbs"`
}

// KeyspaceDB counts the keys of one logical database of a Redis snapshot.
type KeyspaceDB struct {
	// DB is the database number (SELECT n).
	DB int `json:"db"`
	// Keys is the number of keys in the database.
	Keys int64 `json:"keys"`
	// Expires is how many of Keys carry an expiry.
	Expires int64 `json:"expires"`
}

// Table is a row count of one table.
type Table struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows"`
	Estimate bool   `json:"estimate,omitempty"`
}
