package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/testenv"
)

// pgAddr is the PostgreSQL server of the tests: trust authentication for
// the user postgres.
const pgAddr = "127.0.0.1:5432"

// pgArgs are the connection options of every PostgreSQL client call.
var pgArgs = []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres"}

// pgRun runs a PostgreSQL client program and returns its stdout.
func pgRun(t testing.TB, stdin []byte, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, append(slices.Clone(pgArgs), args...)...)
	cmd.Env = baseEnv("PGCONNECT_TIMEOUT=5")
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String()
}

// createDB creates an empty database with a unique name and drops it when
// the test ends.
func createDB(t testing.TB, role string) string {
	t.Helper()
	testenv.LockServer(t, "postgres", false)
	name := fmt.Sprintf("bk_e2e_%s_%d", role, time.Now().UnixNano())
	pgRun(t, nil, "createdb", "-T", "template0", name)
	t.Cleanup(func() { pgRun(t, nil, "dropdb", "--if-exists", "--force", name) })
	return name
}

// pgChecksum returns a digest of every row of the table t in db.
func pgChecksum(t testing.TB, db string) string {
	t.Helper()
	q := `SELECT count(*) || ':' || md5(string_agg(t::text, E'\n' ORDER BY id)) FROM t`
	return strings.TrimSpace(pgRun(t, nil, "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", q))
}

// TestE2EPostgres backs up a real database with pg_dump through bk and
// restores it into another database.
func TestE2EPostgres(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "PostgreSQL", pgAddr)
	for _, prog := range []string{"pg_dump", "psql", "createdb", "dropdb"} {
		testenv.RequireCommand(t, prog)
	}
	src, dst := createDB(t, "src"), createDB(t, "dst")
	pgRun(t, nil, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", src, "-c", `
		CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), seen timestamptz, tags text[], doc jsonb);
		INSERT INTO t SELECT g, md5(g::text) || ' ünïcode ''quoted''', g * 1.25,
			'2026-01-01 00:00:00+00'::timestamptz + g * interval '37 seconds',
			ARRAY['a' || (g % 7), 'b'], jsonb_build_object('g', g, 'sq', g * g)
		FROM generate_series(1, 5000) g;
		CREATE INDEX t_name ON t (name);`)
	want := pgChecksum(t, src)
	if !strings.HasPrefix(want, "5000:") {
		t.Fatalf("source checksum %q, want 5000 rows", want)
	}

	r := newRepo(t)
	res := r.must(nil, "snapshot", "--name", "pg", "--tag", "postgres", "--json", "--",
		"pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--no-owner", src)
	var s snapshotResult
	decodeJSON(t, res.stdout, &s)
	if s.Size < 5000*50 {
		t.Fatalf("the dump has only %d bytes", s.Size)
	}

	dump := r.restore("latest", "--name", "pg")
	if int64(len(dump)) != s.Size {
		t.Fatalf("restored %d bytes, the snapshot has %d", len(dump), s.Size)
	}
	pgRun(t, dump, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dst)
	if got := pgChecksum(t, dst); got != want {
		t.Fatalf("restored database checksum %q, want %q", got, want)
	}

	// A dump of a database that does not exist fails the snapshot.
	res = r.run(nil, "snapshot", "--name", "pg", "--", "pg_dump", "-h", "127.0.0.1", "-U", "postgres", src+"_missing")
	res.wantFail(t, exitSource, "pg_dump exited with status 1", "does not exist")
	if list := r.snapshots(); len(list) != 1 {
		t.Fatalf("want only the good snapshot, got %d", len(list))
	}
}

// TestE2EPostgresSource snapshots a database through the postgres engine
// (`bk snapshot postgres://...`) and restores it straight into a new
// database with `bk restore --to`.
func TestE2EPostgresSource(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "PostgreSQL", pgAddr)
	for _, prog := range []string{"pg_dump", "psql", "createdb", "dropdb"} {
		testenv.RequireCommand(t, prog)
	}
	src := createDB(t, "srcsrc")
	pgRun(t, nil, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", src, "-c", `
		CREATE TABLE t (id int PRIMARY KEY, name text, blob bytea);
		INSERT INTO t SELECT g, md5(g::text) || ' ünïcode', decode(md5(g::text), 'hex') FROM generate_series(1, 3000) g;`)
	want := pgChecksum(t, src)

	r := newRepo(t)
	url := "postgres://postgres@127.0.0.1:5432/" + src
	var s snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", url, "--json").stdout, &s)
	if s.Name != "postgres:"+src || s.Size < 3000*40 {
		t.Fatalf("snapshot %q of %d bytes", s.Name, s.Size)
	}
	var snap struct {
		Manifest struct {
			Engine, Database string
		}
	}
	decodeJSON(t, r.must(nil, "cat", "snapshot", s.ID).stdout, &snap)
	if snap.Manifest.Engine != "postgres" || snap.Manifest.Database != src {
		t.Fatalf("manifest %+v", snap.Manifest)
	}

	dst := fmt.Sprintf("bk_e2e_to_%d", time.Now().UnixNano())
	t.Cleanup(func() { pgRun(t, nil, "dropdb", "--if-exists", "--force", dst) })
	r.must(nil, "restore", s.ID, "--to", "postgres://postgres@127.0.0.1:5432/"+dst)
	if got := pgChecksum(t, dst); got != want {
		t.Fatalf("restored database checksum %q, want %q", got, want)
	}
	// The target now has tables: a second load is refused without --force.
	r.run(nil, "restore", s.ID, "--to", "postgres://postgres@127.0.0.1:5432/"+dst).
		wantFail(t, exitFailure, "not empty", "--force")

	// A password in the URL is refused; a missing database fails the source.
	r.run(nil, "snapshot", "postgres://postgres:secret@127.0.0.1/"+src).wantFail(t, exitUsage)
	r.run(nil, "snapshot", url+"_missing").wantFail(t, exitSource, "does not exist")
	if list := r.snapshots(); len(list) != 1 {
		t.Fatalf("want only the good snapshot, got %d", len(list))
	}
}

// TestE2EPostgresAll snapshots every database of the server and its globals
// from one source, postgres://host/*.
func TestE2EPostgresAll(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "PostgreSQL", pgAddr)
	for _, prog := range []string{"pg_dump", "pg_dumpall", "psql", "createdb", "dropdb"} {
		testenv.RequireCommand(t, prog)
	}
	// No other test may create or drop a database while this one lists
	// them all; it creates its own without the shared lock createDB takes.
	testenv.LockServer(t, "postgres", true)
	db := fmt.Sprintf("bk_e2e_all_%d", time.Now().UnixNano())
	pgRun(t, nil, "createdb", "-T", "template0", db)
	t.Cleanup(func() { pgRun(t, nil, "dropdb", "--if-exists", "--force", db) })
	r := newRepo(t)
	var res []snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", "postgres://postgres@127.0.0.1:5432/*", "--json").stdout, &res)
	names := map[string]bool{}
	for _, s := range res {
		names[s.Name] = true
	}
	if !names["postgres:globals"] || !names["postgres:"+db] || names["postgres:template0"] {
		t.Fatalf("snapshots of postgres://host/*: %v", names)
	}
	globals := string(r.restore("latest", "--name", "postgres:globals"))
	if !strings.Contains(globals, "CREATE ROLE postgres") {
		t.Fatalf("the globals dump has no roles:\n%.500s", globals)
	}
	r.run(nil, "snapshot", "postgres://postgres@127.0.0.1:5432/*", "--name", "x").wantFail(t, exitUsage, "expands")
}

// TestE2ESQLiteSource snapshots a SQLite database by URL and restores it
// into a new file with --to; a missing database is an error that creates
// nothing.
func TestE2ESQLiteSource(t *testing.T) {
	t.Parallel()
	sqlite3 := testenv.RequireCommand(t, "sqlite3")
	dir := t.TempDir()
	db := dir + "/app.db"
	if out, err := exec.Command(sqlite3, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); "+
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) INSERT INTO t SELECT i, hex(randomblob(20)) FROM n;").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	r := newRepo(t)
	var s snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", "sqlite://"+db, "--json").stdout, &s)
	if s.Name != "sqlite:app.db" {
		t.Fatalf("snapshot name %q", s.Name)
	}
	r.must(nil, "restore", s.ID, "--to", "sqlite://"+dir+"/copy.db")
	count := func(path string) string {
		out, err := exec.Command(sqlite3, path, "SELECT count(*) || ':' || sum(length(v)) FROM t").Output()
		if err != nil {
			t.Fatalf("count %s: %v", path, err)
		}
		return strings.TrimSpace(string(out))
	}
	if got, want := count(dir+"/copy.db"), count(db); got != want {
		t.Fatalf("restored %s, source %s", got, want)
	}
	r.run(nil, "snapshot", "sqlite://"+dir+"/missing.db").wantFail(t, exitSource, "does not exist")
	if _, err := os.Stat(dir + "/missing.db"); !os.IsNotExist(err) {
		t.Fatalf("a snapshot of a missing database created it: %v", err)
	}
}

// TestE2ERedisSource snapshots the Redis server over the replication
// protocol and restores the RDB file with --target.
func TestE2ERedisSource(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "Redis", "127.0.0.1:6379")
	r := newRepo(t)
	var s snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", "redis://127.0.0.1:6379", "--json").stdout, &s)
	if s.Name != "redis:127.0.0.1:6379" || s.Size < 9 {
		t.Fatalf("snapshot %q of %d bytes", s.Name, s.Size)
	}
	dir := t.TempDir()
	r.must(nil, "restore", s.ID, "--target", dir)
	rdb, err := os.ReadFile(dir + "/redis_127.0.0.1_6379.rdb")
	if err != nil || !bytes.HasPrefix(rdb, []byte("REDIS")) || int64(len(rdb)) != s.Size {
		t.Fatalf("restored RDB: %v, %d bytes, header %q", err, len(rdb), rdb[:min(9, len(rdb))])
	}
	r.run(nil, "restore", s.ID, "--to", "redis://127.0.0.1:6379").wantFail(t, exitFailure, "--target")
	// A closed port is a clear error and no snapshot.
	r.run(nil, "snapshot", "redis://127.0.0.1:1").wantFail(t, exitSource, "refused")
}
