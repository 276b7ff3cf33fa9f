package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The days benchmark: one table of a real PostgreSQL, MariaDB and SQLite
// database, snapshotted by bk through the engine's URL on two nights with 1%
// of the rows updated at random between them, and the same dumps, written to
// files by the engine's tool with bk's options, backed up by restic and borg.

// daysTable is the table each scratch database holds.
const daysTable = "bench_orders"

// daysRowBytes is about how many bytes one row of daysTable takes in a
// pg_dump plain dump; -days-size divided by it is the number of rows.
// mariadb-dump's are about 8% larger, and SQLite's file 40% smaller.
const daysRowBytes = 145

// The engines of the days benchmark, as -days-engines names them.
const (
	daysPostgres = "postgres"
	daysMySQL    = "mysql"
	daysSQLite   = "sqlite"
)

// daysResult is the days benchmark, one entry per engine.
type daysResult struct {
	Rows     int64        `json:"rows"`
	Fraction float64      `json:"update_fraction"`
	Engines  []*daysRound `json:"engines"`
}

// daysRound is two nights of one engine.
type daysRound struct {
	Engine   string `json:"engine"`
	Server   string `json:"server,omitempty"`
	Database string `json:"database"`
	Source   string `json:"source"` // the URL bk snapshots
	// Dumper is how the files given to restic and borg were written.
	Dumper   string        `json:"dumper"`
	Rows     int64         `json:"rows"`
	Updated  int64         `json:"updated_rows"`
	SetupSec float64       `json:"setup_s"`
	Dumps    []pgDump      `json:"dumps"`
	Tools    []*toolResult `json:"tools"`
	Skipped  string        `json:"skipped,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// tool returns the named tool's result if it completed, or nil.
func (d *daysRound) tool(name string) *toolResult {
	for _, t := range d.Tools {
		if t.Name == name && t.Error == "" {
			return t
		}
	}
	return nil
}

// daysDB drives one engine's scratch database.
type daysDB interface {
	// server connects and returns the server's name and version; an error
	// means the engine is skipped.
	server(ctx context.Context) (string, error)
	// create makes the database afresh with rows rows in daysTable.
	create(ctx context.Context, rows int64) error
	// update changes n rows chosen at random.
	update(ctx context.Context, n int64) error
	// dump writes the dump bk's engine streams to the file path.
	dump(ctx context.Context, path string) error
	// drop removes the database; it is called even when create failed.
	drop(ctx context.Context) error
	// source is the URL bk snapshots; dumper says how dump works.
	source() string
	dumper() string
	database() string
}

// daysRows is the number of rows of a dump of about size bytes.
func daysRows(size int64) int64 { return max(size/daysRowBytes, 1000) }

// daysUpdated is the number of rows an update of fraction of rows changes.
func daysUpdated(rows int64, fraction float64) int64 {
	n := int64(float64(rows)*fraction + 0.5)
	return min(max(n, 1), rows)
}

// benchDays runs the days benchmark on each engine of o.daysEngines with the
// tools bk, restic and borg (those present).
func benchDays(ctx context.Context, o options, work string, tools []*tool, progress io.Writer) *daysResult {
	res := &daysResult{Rows: daysRows(o.daysSize), Fraction: o.daysUpdate}
	for _, name := range strings.Split(o.daysEngines, ",") {
		if ctx.Err() != nil {
			break
		}
		name = strings.TrimSpace(name)
		db, err := newDaysDB(name, o, work)
		d := &daysRound{Engine: name, Rows: res.Rows, Updated: daysUpdated(res.Rows, o.daysUpdate)}
		res.Engines = append(res.Engines, d)
		if err != nil {
			d.Skipped = err.Error()
			continue
		}
		d.Database, d.Source, d.Dumper = db.database(), db.source(), db.dumper()
		d.run(ctx, o, db, work, tools, progress)
	}
	return res
}

// newDaysDB returns the scratch database of the named engine.
func newDaysDB(name string, o options, work string) (daysDB, error) {
	switch name {
	case daysPostgres:
		return newPGScratch(o.daysPG)
	case daysMySQL:
		return newMySQLScratch(o.daysMySQL)
	case daysSQLite:
		return newSQLiteScratch(filepath.Join(work, "bk_bench_days_sqlite.db"))
	}
	return nil, fmt.Errorf("unknown engine %q (want %s, %s or %s)", name, daysPostgres, daysMySQL, daysSQLite)
}

// run does the two nights of one engine. Problems reaching the server set
// Skipped; later failures set Error. The database is dropped on every
// outcome, and the dumps are removed unless -keep.
func (d *daysRound) run(ctx context.Context, o options, db daysDB, work string, tools []*tool, progress io.Writer) {
	ver, err := db.server(ctx)
	if err != nil {
		d.Skipped = firstLine(err.Error())
		return
	}
	d.Server = ver
	// Tests that list every database of the server must not see this one
	// come and go (internal/testenv.LockServer).
	unlock := lockServer(d.Engine)
	defer unlock()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := db.drop(dctx); err != nil {
			d.Error = strings.TrimSpace(d.Error + "; drop database: " + firstLine(err.Error()))
		}
	}()
	if err := d.nights(ctx, o, db, work, tools, progress); err != nil {
		d.Error = err.Error()
	}
	if !o.keep {
		for _, x := range d.Dumps {
			_ = os.Remove(x.file)
		}
	}
}

func (d *daysRound) nights(ctx context.Context, o options, db daysDB, work string, tools []*tool, progress io.Writer) error {
	start := time.Now()
	fmt.Fprintf(progress, "bench: days: %s: creating %s with %s rows\n", d.Engine, d.Database, withCommas(d.Rows))
	if err := db.create(ctx, d.Rows); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	d.SetupSec = time.Since(start).Seconds()

	var bk *toolResult
	var others []*tool
	for _, t := range tools {
		dir := fmt.Sprintf("repo-%s-days-%s", t.Name, d.Engine)
		switch t.Name {
		case "bk":
			x := newBKAt(t.bin, work, o.level, dir)
			x.Version = t.Version
			bk = &toolResult{tool: x}
			if err := x.initRepo(ctx); err != nil {
				bk.Error = err.Error()
			}
			d.Tools = append(d.Tools, bk)
		case "restic":
			x := newResticAt(t.bin, work, dir)
			x.Version = t.Version
			others = append(others, x)
		case "borg":
			x := newBorgAt(t.bin, work, o.level, dir)
			x.Version = t.Version
			others = append(others, x)
		}
	}
	var nights []night
	for n := 1; n <= 2; n++ {
		if n == 2 {
			fmt.Fprintf(progress, "bench: days: %s: updating %s rows at random\n", d.Engine, withCommas(d.Updated))
			if err := db.update(ctx, d.Updated); err != nil {
				return fmt.Errorf("update: %w", err)
			}
		}
		if bk != nil && bk.Error == "" {
			fmt.Fprintf(progress, "bench: days: %s: bk snapshot %s, %s\n", d.Engine, d.Source, nightRun(n))
			r, err := bk.snapshotSource(ctx, nightRun(n), d.Source)
			if err != nil {
				bk.Error = err.Error()
			} else {
				bk.Runs = append(bk.Runs, r)
			}
		}
		if len(others) == 0 {
			continue
		}
		x := pgDump{Format: d.Dumper, Night: n, file: filepath.Join(work, fmt.Sprintf("days-%s-%d.dump", d.Engine, n))}
		fmt.Fprintf(progress, "bench: days: %s: dump to a file, %s\n", d.Engine, nightRun(n))
		t0 := time.Now()
		err := db.dump(ctx, x.file)
		x.Seconds = time.Since(t0).Seconds()
		d.Dumps = append(d.Dumps, x) // removed at the end, even when incomplete
		if err != nil {
			return fmt.Errorf("dump %s: %w", nightRun(n), err)
		}
		fi, err := os.Stat(x.file)
		if err != nil {
			return err
		}
		d.Dumps[len(d.Dumps)-1].Bytes = fi.Size()
		nights = append(nights, night{N: n, Bytes: fi.Size(), file: x.file})
	}
	for _, t := range others {
		d.Tools = append(d.Tools, runNights(ctx, t, nights, progress))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if bk != nil && bk.Error != "" {
		return fmt.Errorf("bk: %s", firstLine(bk.Error))
	}
	return nil
}

// snapshotSource runs `bk snapshot --json SOURCE` on the tool's repository:
// bk runs the engine's dump itself.
func (r *toolResult) snapshotSource(ctx context.Context, name, source string) (run, error) {
	var stdout bytes.Buffer
	x, err := r.exec(ctx, name, []string{"snapshot", "--repo", r.repo, "--json", source}, "", &stdout)
	if err != nil {
		return x, err
	}
	s, err := parseSourceSummary(stdout.Bytes())
	if err != nil {
		return x, err
	}
	if s.ID == "" || s.Size <= 0 {
		return x, fmt.Errorf("bk snapshot --json: id %q, size %d", s.ID, s.Size)
	}
	x.Reported, x.StreamBytes = s, s.Size
	x.MBps = mbps(s.Size, x.WallSec)
	return x, nil
}

// parseSourceSummary reads the --json summary of a snapshot of one source:
// one object, or a list of one.
func parseSourceSummary(out []byte) (*snapshotSummary, error) {
	out = bytes.TrimSpace(out)
	var list []snapshotSummary
	if len(out) > 0 && out[0] == '[' {
		if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 {
			return nil, fmt.Errorf("bk snapshot --json: want one snapshot (%v) in %q", err, truncate(out, 200))
		}
		return &list[0], nil
	}
	var s snapshotSummary
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("bk snapshot --json: %w in %q", err, truncate(out, 200))
	}
	return &s, nil
}

// lockServer takes the shared flock that tests which create databases take
// on the server (internal/testenv.LockServer), best effort, and returns its
// release.
func lockServer(server string) func() {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "bk-test-"+server+".lock"), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return func() {}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		_ = f.Close()
		return func() {}
	}
	return func() { _ = f.Close() }
}

// lookBin finds a program on PATH or, for PostgreSQL's, in the Debian
// folders.
func lookBin(names ...string) (string, error) {
	for _, name := range names {
		if bin, err := exec.LookPath(name); err == nil {
			return bin, nil
		}
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
			return m[len(m)-1], nil
		}
	}
	return "", fmt.Errorf("%s not found", strings.Join(names, " or "))
}

// runTool runs a client program with stdin (may be nil) and returns its
// standard output; the error quotes its standard error.
func runTool(ctx context.Context, env []string, stdin io.Reader, stdout io.Writer, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// dumpTo runs a dump program with its standard output to the file path.
func dumpTo(ctx context.Context, env []string, path, bin string, args ...string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = runTool(ctx, env, nil, f, bin, args...)
	return errors.Join(err, f.Close())
}

// serverURL parses a URL of a server, without a database or a password.
func serverURL(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, err
	case !contains(schemes, u.Scheme):
		return nil, fmt.Errorf("%q: want a %s:// URL", raw, schemes[0])
	case u.Host == "":
		return nil, fmt.Errorf("%q: no host", raw)
	case strings.Trim(u.Path, "/") != "":
		return nil, fmt.Errorf("%q: name the server only, not a database", raw)
	}
	if _, set := u.User.Password(); set {
		return nil, fmt.Errorf("%q: no password in the URL, please (bk refuses it too)", raw)
	}
	return u, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// withDatabase returns the server URL u with the database db.
func withDatabase(u *url.URL, db string) string {
	c := *u
	c.Path = "/" + db
	return c.String()
}

// --- PostgreSQL ---

// pgScratch is the PostgreSQL scratch database, driven by psql and pg_dump.
type pgScratch struct {
	u           *url.URL
	psql, dumpB string
}

const daysPGDatabase = "bk_bench_days_pg"

func newPGScratch(raw string) (*pgScratch, error) {
	u, err := serverURL(raw, "postgres", "postgresql")
	if err != nil {
		return nil, err
	}
	p := &pgScratch{u: u}
	if p.psql, err = lookBin("psql"); err != nil {
		return nil, fmt.Errorf("%w (apt-get install postgresql-client)", err)
	}
	if p.dumpB, err = lookBin("pg_dump"); err != nil {
		return nil, fmt.Errorf("%w (apt-get install postgresql-client)", err)
	}
	return p, nil
}

func (p *pgScratch) database() string { return daysPGDatabase }
func (p *pgScratch) source() string   { return withDatabase(p.u, daysPGDatabase) }
func (p *pgScratch) dumper() string   { return "pg_dump --format=plain to a file" }

// env: commits need not wait for the disk, and an unreachable server fails fast.
var pgEnv = []string{"PGOPTIONS=-c synchronous_commit=off", "PGCONNECT_TIMEOUT=10"}

func (p *pgScratch) sql(ctx context.Context, db string, stmts ...string) (string, error) {
	args := []string{"-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", withDatabase(p.u, db)}
	for _, s := range stmts {
		args = append(args, "-c", s)
	}
	return runTool(ctx, pgEnv, nil, nil, p.psql, args...)
}

func (p *pgScratch) server(ctx context.Context) (string, error) {
	v, err := p.sql(ctx, "postgres", "SHOW server_version")
	if err != nil {
		return "", fmt.Errorf("PostgreSQL not reachable at %s: %w", p.u, err)
	}
	return "PostgreSQL " + strings.TrimSpace(v), nil
}

func (p *pgScratch) create(ctx context.Context, rows int64) error {
	if _, err := p.sql(ctx, "postgres", "DROP DATABASE IF EXISTS "+daysPGDatabase, "CREATE DATABASE "+daysPGDatabase); err != nil {
		return err
	}
	_, err := p.sql(ctx, daysPGDatabase, `CREATE TABLE `+daysTable+` (
	id bigint PRIMARY KEY,
	customer_id integer NOT NULL,
	status text NOT NULL,
	sku text NOT NULL,
	quantity integer NOT NULL,
	amount numeric(12,2) NOT NULL,
	created_at timestamp NOT NULL,
	updated_at timestamp NOT NULL,
	note text NOT NULL)`,
		fmt.Sprintf(`INSERT INTO `+daysTable+` SELECT i, (i * 7919) %% 100000,
	(ARRAY['new','paid','shipped','delivered','returned'])[(1 + i %% 5)::int],
	'SKU-' || lpad(((i * 31) %% 50000)::text, 6, '0'), 1 + i %% 9,
	round((random() * 1000)::numeric, 2),
	timestamp '2024-01-01' + i * interval '7 seconds',
	timestamp '2024-01-01' + i * interval '7 seconds' + (i %% 86400) * interval '1 second',
	'order ' || i || ' of customer ' || (i * 7919) %% 100000 || ': ' || md5(i::text)
	FROM generate_series(1::bigint, %d) AS i`, rows),
		"VACUUM ANALYZE "+daysTable)
	return err
}

func (p *pgScratch) update(ctx context.Context, n int64) error {
	_, err := p.sql(ctx, daysPGDatabase, fmt.Sprintf(`UPDATE `+daysTable+` SET status = 'refunded',
	amount = amount + 1, quantity = quantity + 1, updated_at = updated_at + interval '1 day'
	WHERE id IN (SELECT id FROM `+daysTable+` ORDER BY random() LIMIT %d)`, n))
	return err
}

func (p *pgScratch) dump(ctx context.Context, path string) error {
	return dumpTo(ctx, pgEnv, path, p.dumpB, "--format=plain", "-d", withDatabase(p.u, daysPGDatabase))
}

func (p *pgScratch) drop(ctx context.Context) error {
	_, err := p.sql(ctx, "postgres", "DROP DATABASE IF EXISTS "+daysPGDatabase)
	return err
}

// --- MariaDB ---

// mysqlScratch is the MariaDB (or MySQL) scratch database, driven by the
// mariadb client and mariadb-dump.
type mysqlScratch struct {
	u             *url.URL
	client, dumpB string
	mariadb       bool // set by server
}

const daysMySQLDatabase = "bk_bench_days_mysql"

// mysqlDumpOptions are the options bk's mysql engine gives mariadb-dump.
var mysqlDumpOptions = []string{"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob"}

func newMySQLScratch(raw string) (*mysqlScratch, error) {
	u, err := serverURL(raw, "mysql", "mariadb")
	if err != nil {
		return nil, err
	}
	m := &mysqlScratch{u: u}
	if m.client, err = lookBin("mariadb", "mysql"); err != nil {
		return nil, fmt.Errorf("%w (apt-get install mariadb-client)", err)
	}
	if m.dumpB, err = lookBin("mariadb-dump", "mysqldump"); err != nil {
		return nil, fmt.Errorf("%w (apt-get install mariadb-client)", err)
	}
	return m, nil
}

func (m *mysqlScratch) database() string { return daysMySQLDatabase }
func (m *mysqlScratch) source() string   { return withDatabase(m.u, daysMySQLDatabase) }
func (m *mysqlScratch) dumper() string {
	return "mariadb-dump " + strings.Join(mysqlDumpOptions, " ") + " to a file"
}

// mysqlArgs are the client's connection arguments for the server URL u.
func mysqlArgs(u *url.URL) []string {
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	args := []string{"--no-defaults", "--protocol=TCP", "-h", u.Hostname(), "-P", port}
	if u.User != nil && u.User.Username() != "" {
		args = append(args, "-u", u.User.Username())
	}
	return args
}

func (m *mysqlScratch) sql(ctx context.Context, db, stmts string) (string, error) {
	args := append(mysqlArgs(m.u), "--connect-timeout=10", "--batch", "--skip-column-names")
	if db != "" {
		args = append(args, "-D", db)
	}
	return runTool(ctx, nil, nil, nil, m.client, append(args, "-e", stmts)...)
}

func (m *mysqlScratch) server(ctx context.Context) (string, error) {
	v, err := m.sql(ctx, "", "SELECT VERSION()")
	if err != nil {
		return "", fmt.Errorf("MariaDB not reachable at %s: %w", m.u, err)
	}
	v = strings.TrimSpace(v)
	if m.mariadb = strings.Contains(strings.ToLower(v), "mariadb"); !m.mariadb {
		return "MySQL " + v, nil
	}
	v, _, _ = strings.Cut(v, "-MariaDB")
	return "MariaDB " + v, nil
}

func (m *mysqlScratch) create(ctx context.Context, rows int64) error {
	// Rows come from a recursive CTE, which works with or without
	// MariaDB's sequence engine; the session allows its depth, which MySQL
	// and MariaDB name differently.
	depth := "max_recursive_iterations"
	if !m.mariadb {
		depth = "cte_max_recursion_depth"
	}
	_, err := m.sql(ctx, "", fmt.Sprintf(`DROP DATABASE IF EXISTS %[1]s; CREATE DATABASE %[1]s; USE %[1]s;
CREATE TABLE %[2]s (
	id bigint PRIMARY KEY,
	customer_id int NOT NULL,
	status varchar(16) NOT NULL,
	sku varchar(16) NOT NULL,
	quantity int NOT NULL,
	amount decimal(12,2) NOT NULL,
	created_at datetime NOT NULL,
	updated_at datetime NOT NULL,
	note text NOT NULL) ENGINE=InnoDB;
SET SESSION %[4]s = %[3]d;
INSERT INTO %[2]s
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[3]d)
SELECT i, (i * 7919) %% 100000, ELT(1 + i %% 5, 'new', 'paid', 'shipped', 'delivered', 'returned'),
	CONCAT('SKU-', LPAD((i * 31) %% 50000, 6, '0')), 1 + i %% 9, ROUND(RAND() * 1000, 2),
	TIMESTAMP '2024-01-01 00:00:00' + INTERVAL i * 7 SECOND,
	TIMESTAMP '2024-01-01 00:00:00' + INTERVAL i * 7 + i %% 86400 SECOND,
	CONCAT('order ', i, ' of customer ', (i * 7919) %% 100000, ': ', MD5(i))
FROM s;
ANALYZE TABLE %[2]s;`, daysMySQLDatabase, daysTable, rows, depth))
	return err
}

func (m *mysqlScratch) update(ctx context.Context, n int64) error {
	_, err := m.sql(ctx, daysMySQLDatabase, fmt.Sprintf(`UPDATE %s SET status = 'refunded',
	amount = amount + 1, quantity = quantity + 1, updated_at = updated_at + INTERVAL 1 DAY
	ORDER BY RAND() LIMIT %d`, daysTable, n))
	return err
}

func (m *mysqlScratch) dump(ctx context.Context, path string) error {
	args := append(append(mysqlArgs(m.u), mysqlDumpOptions...), daysMySQLDatabase)
	return dumpTo(ctx, nil, path, m.dumpB, args...)
}

func (m *mysqlScratch) drop(ctx context.Context) error {
	_, err := m.sql(ctx, "", "DROP DATABASE IF EXISTS "+daysMySQLDatabase)
	return err
}

// --- SQLite ---

// sqliteScratch is a scratch SQLite database file, driven by the sqlite3 shell.
type sqliteScratch struct {
	path, bin string
}

func newSQLiteScratch(path string) (*sqliteScratch, error) {
	bin, err := lookBin("sqlite3")
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install sqlite3)", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return &sqliteScratch{path: abs, bin: bin}, nil
}

func (s *sqliteScratch) database() string { return filepath.Base(s.path) }
func (s *sqliteScratch) source() string   { return "sqlite://" + s.path }

// dumper: bk's sqlite engine streams the file that VACUUM INTO writes, not
// .dump SQL; the files for restic and borg are made the same way.
func (s *sqliteScratch) dumper() string {
	return "sqlite3 VACUUM INTO a file (the database file, as bk streams it)"
}

func (s *sqliteScratch) sql(ctx context.Context, script string) (string, error) {
	return runTool(ctx, nil, strings.NewReader(script), nil, s.bin, "-bail", "-batch", s.path)
}

func (s *sqliteScratch) server(ctx context.Context) (string, error) {
	out, err := runTool(ctx, nil, nil, nil, s.bin, "-batch", ":memory:", "SELECT sqlite_version()")
	if err != nil {
		return "", err
	}
	return "SQLite " + strings.TrimSpace(out), nil
}

func (s *sqliteScratch) create(ctx context.Context, rows int64) error {
	if err := s.drop(ctx); err != nil {
		return err
	}
	_, err := s.sql(ctx, fmt.Sprintf(`PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE %[1]s (
	id INTEGER PRIMARY KEY,
	customer_id INTEGER NOT NULL,
	status TEXT NOT NULL,
	sku TEXT NOT NULL,
	quantity INTEGER NOT NULL,
	amount NUMERIC NOT NULL,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	note TEXT NOT NULL);
BEGIN;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[2]d)
INSERT INTO %[1]s
SELECT i, (i * 7919) %% 100000,
	CASE i %% 5 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' WHEN 3 THEN 'delivered' ELSE 'returned' END,
	printf('SKU-%%06d', (i * 31) %% 50000), 1 + i %% 9, round(abs(random() %% 100000) / 100.0, 2),
	datetime('2024-01-01', '+' || (i * 7) || ' seconds'),
	datetime('2024-01-01', '+' || (i * 7 + i %% 86400) || ' seconds'),
	'order ' || i || ' of customer ' || (i * 7919) %% 100000 || ': ' || lower(hex(randomblob(16)))
FROM s;
COMMIT;
`, daysTable, rows))
	return err
}

func (s *sqliteScratch) update(ctx context.Context, n int64) error {
	_, err := s.sql(ctx, fmt.Sprintf(`UPDATE %[1]s SET status = 'refunded',
	amount = amount + 1, quantity = quantity + 1, updated_at = datetime(updated_at, '+1 day')
	WHERE id IN (SELECT id FROM %[1]s ORDER BY random() LIMIT %[2]d);
`, daysTable, n))
	return err
}

func (s *sqliteScratch) dump(ctx context.Context, path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_, err := runTool(ctx, nil, nil, nil, s.bin, "-bail", "-batch", "file:"+s.path+"?mode=ro",
		"VACUUM INTO "+sqlQuote(path))
	return err
}

func (s *sqliteScratch) drop(context.Context) error {
	var errs []error
	for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sqlQuote quotes s as an SQL string literal.
func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// --- report ---

func printDays(w io.Writer, r *daysResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\n== Dedup across days: real databases, %s rows in one table (ints, text, timestamps, numeric), %.2f%% of rows updated at random between night 1 and night 2\n",
		withCommas(r.Rows), 100*r.Fraction)
	fmt.Fprintf(w, "bk snapshots the engine URL (bk runs the dump); restic and borg back up the same dump written to a file by the engine's tool\n")
	fmt.Fprintf(w, "added: bk's `snapshot --json` added_bytes for bk, the repository's growth for the others; ratios compare repository growth\n")
	fmt.Fprintf(w, "(bk's wall and CPU seconds include running the dump; restic and borg read a file: timings are not comparable here)\n")
	for _, d := range r.Engines {
		if d.Skipped != "" {
			fmt.Fprintf(w, "\n%s: skipped: %s\n", d.Engine, d.Skipped)
			continue
		}
		fmt.Fprintf(w, "\n%s: %s, database %s (dropped at the end), %s rows, %s updated (setup %.0f s)\n",
			d.Engine, d.Server, d.Database, withCommas(d.Rows), withCommas(d.Updated), d.SetupSec)
		fmt.Fprintf(w, "bk snapshot %s; restic and borg: %s\n", d.Source, d.Dumper)
		tw := newTable(w)
		fmt.Fprintln(tw, "tool\trun\tstream\twall s\tMB/s\tCPU s\tpeak RSS\tadded\trepo growth\tof night 1\tnotes")
		for _, t := range d.Tools {
			for i, x := range t.Runs {
				added, share, note := formatSize(x.Added), "-", ""
				if s := x.Reported; s != nil {
					added = formatSize(s.AddedBytes)
					if i > 0 {
						share = fmt.Sprintf("%.2f%%", pct(s.AddedBytes, t.Runs[0].Reported.AddedBytes))
					}
					note = fmt.Sprintf("added %d blobs, %d as deltas", s.AddedBlobs, s.AddedDeltas)
					if i < len(d.Dumps) && d.Dumps[i].Bytes > 0 && d.Dumps[i].Bytes != s.Size {
						note += fmt.Sprintf("; the file dump is %s", formatSize(d.Dumps[i].Bytes))
					}
				} else if _, p, ok := t.stored(i + 1); ok && i > 0 {
					share = fmt.Sprintf("%.2f%%", p)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%s\n", t.Name, x.Name, formatSize(x.StreamBytes),
					x.WallSec, x.MBps, x.CPUSec, formatSize(x.MaxRSS), added, formatSize(x.Added), share, note)
			}
			if t.Error != "" {
				fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t\t\t%s\n", t.Name, firstLine(t.Error))
			}
		}
		tw.Flush()
		if d.Error != "" {
			fmt.Fprintf(w, "%s FAILED: %s\n", d.Engine, firstLine(d.Error))
		}
	}

	// The summary: night 2 of every engine side by side.
	var done []*daysRound
	for _, d := range r.Engines {
		if d.tool("bk").find(nightRun(2)).Reported != nil {
			done = append(done, d)
		}
	}
	if len(done) == 0 {
		return
	}
	fmt.Fprintf(w, "\nnight 2 (%.2f%% of rows updated): added bytes, and as a share of night 1's\n", 100*r.Fraction)
	tw := newTable(w)
	fmt.Fprintln(tw, "engine\tdump\tbk\trestic\tborg\tbk/restic\tbk/borg")
	for _, d := range done {
		bk := d.tool("bk")
		b1, b2 := bk.find(nightRun(1)), bk.find(nightRun(2))
		cell := func(name string) (string, int64) {
			t := d.tool(name)
			if t == nil {
				return "-", 0
			}
			a, p, ok := t.stored(2)
			if !ok {
				return "-", 0
			}
			return fmt.Sprintf("%s (%.1f%%)", formatSize(a), p), a
		}
		rs, ra := cell("restic")
		bs, ba := cell("borg")
		bkCell := "-"
		if b1.Reported != nil && b2.Reported != nil {
			bkCell = fmt.Sprintf("%s (%.2f%%)", formatSize(b2.Reported.AddedBytes), pct(b2.Reported.AddedBytes, b1.Reported.AddedBytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Engine, formatSize(b2.StreamBytes), bkCell, rs, bs,
			share(b2.Added, ra), share(b2.Added, ba))
	}
	tw.Flush()
}

// daysEngineList checks a -days-engines value.
func daysEngineList(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("-days-engines is empty")
	}
	for _, name := range strings.Split(s, ",") {
		if !contains([]string{daysPostgres, daysMySQL, daysSQLite}, strings.TrimSpace(name)) {
			return fmt.Errorf("-days-engines: unknown engine %q (want %s, %s or %s)", name, daysPostgres, daysMySQL, daysSQLite)
		}
	}
	return nil
}
