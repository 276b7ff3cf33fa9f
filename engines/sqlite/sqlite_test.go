package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/internal/testenv"
)

// sq runs script with the sqlite3 shell on db and returns its stdout.
func sq(t testing.TB, db, script string) string {
	t.Helper()
	cmd := exec.Command("sqlite3", "-batch", "-bail", "-init", os.DevNull, db)
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", db, err, stderr.String())
	}
	return string(out)
}

func newEngine(t testing.TB, path string) *Engine {
	t.Helper()
	e, err := New((&url.URL{Scheme: "sqlite", Path: path}).String(), Options{})
	if err != nil {
		t.Fatalf("New(%q): %v", path, err)
	}
	return e
}

// schemaSQL lists the schema by name: VACUUM INTO writes tables before
// indexes, so the order of sqlite_schema, and of .schema, may change.
const schemaSQL = `.mode quote
SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name;`

// sameSchema compares the schemas of two databases.
func sameSchema(t testing.TB, a, b string) {
	t.Helper()
	sa, sb := sq(t, a, schemaSQL), sq(t, b, schemaSQL)
	if sa != sb {
		t.Errorf("schema differs:\n%s\n---\n%s", sa, sb)
	}
}

func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

const fixtureSQL = `
PRAGMA journal_mode = wal;
PRAGMA user_version = 42;
CREATE TABLE kinds (
  id INTEGER PRIMARY KEY,
  i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC
);
INSERT INTO kinds VALUES
  (1, NULL, NULL, NULL, NULL, NULL),
  (2, -9223372036854775808, 1.5e300, 'héllo wörld ☃ 日本語 🦀', x'00ff10', 3.14),
  (3, 9223372036854775807, -0.0, '', x'', 'abc'),
  (4, 0, 2.5, 'line1' || char(10) || 'line2' || char(0) || 'after nul', zeroblob(70000), NULL);
CREATE TABLE "odd ""name""; table" (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO "odd ""name""; table" VALUES ('a', 1), ('b', NULL);
CREATE TABLE big (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300)
  INSERT INTO big(body) SELECT printf('%d:', x) || hex(randomblob(2000)) FROM c;
CREATE INDEX big_body ON big(substr(body, 1, 10));
CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER kinds_log AFTER INSERT ON kinds BEGIN INSERT INTO log(what) VALUES ('kind ' || new.id); END;
INSERT INTO kinds(id, t) VALUES (5, 'fired');
CREATE VIEW kinds_text AS SELECT id, t FROM kinds WHERE t IS NOT NULL;
`

// makeFixture creates a database of many types and objects.
func makeFixture(t testing.TB) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "src.db")
	sq(t, db, fixtureSQL)
	return db
}

func TestRoundTrip(t *testing.T) {
	testenv.RequireCommand(t, "sqlite3")
	ctx := context.Background()
	src := makeFixture(t)
	var buf bytes.Buffer
	m, err := newEngine(t, src).Dump(ctx, &buf)
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if m.Engine != "sqlite" || m.Tool != "sqlite3" || !strings.HasPrefix(m.ToolVersion, "3.") ||
		!strings.HasPrefix(m.ServerVersion, "3.") || m.Database != src {
		t.Errorf("manifest = %+v", m)
	}
	want := []engines.Table{{Name: "big", Rows: 300}, {Name: "kinds", Rows: 5}, {Name: "log", Rows: 1}, {Name: `odd "name"; table`, Rows: 2}}
	if fmt.Sprint(m.Tables) != fmt.Sprint(want) {
		t.Errorf("tables = %+v, want %+v", m.Tables, want)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte(header)) {
		t.Fatalf("the stream does not start with the SQLite header")
	}

	dst := filepath.Join(t.TempDir(), "sub dir", "new'db?.db")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := newEngine(t, dst).Restore(ctx, bytes.NewReader(buf.Bytes()), false); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := strings.TrimSpace(sq(t, dst, "PRAGMA integrity_check;")); got != "ok" {
		t.Fatalf("integrity_check of the restore = %q", got)
	}
	sameSchema(t, src, dst)
	if s := sq(t, dst, schemaSQL); !strings.Contains(s, "'trigger','kinds_log'") || !strings.Contains(s, "'view','kinds_text'") || !strings.Contains(s, "'index','big_body'") {
		t.Errorf("the restored schema lacks objects:\n%s", s)
	}
	// VACUUM INTO may store tables in another order; compare the dumps
	// line by line as sets (every row is one INSERT line).
	if a, b := sortedLines(sq(t, src, ".dump")), sortedLines(sq(t, dst, ".dump")); a != b {
		t.Errorf(".dump differs (%d vs %d bytes)", len(a), len(b))
	}
	if got := strings.TrimSpace(sq(t, dst, "PRAGMA user_version;")); got != "42" {
		t.Errorf("user_version = %s, want 42", got)
	}
	// The trigger still works in the copy.
	sq(t, dst, "INSERT INTO kinds(id) VALUES (6);")
	if got := strings.TrimSpace(sq(t, dst, "SELECT count(*) FROM log;")); got != "2" {
		t.Errorf("log rows after insert = %s, want 2", got)
	}
	// No temp file is left next to the target.
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 1 {
		t.Errorf("target directory holds %d entries, want 1", len(ents))
	}

	// An existing target is refused, then replaced with force.
	err = newEngine(t, dst).Restore(ctx, bytes.NewReader(buf.Bytes()), false)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("Restore onto an existing file: %v, want ErrExists", err)
	}
	if err := newEngine(t, dst).Restore(ctx, bytes.NewReader(buf.Bytes()), true); err != nil {
		t.Fatalf("Restore with force: %v", err)
	}
	if got := strings.TrimSpace(sq(t, dst, "SELECT count(*) FROM log;")); got != "1" {
		t.Errorf("log rows after forced restore = %s, want 1", got)
	}
}

// The writer moves money between accounts and logs each transfer; every
// committed state keeps bal = 1000 + in - out for each account.
const (
	accounts      = 20
	invariantSQL  = `SELECT count(*) FROM acct a WHERE a.bal != 1000 + coalesce((SELECT sum(amt) FROM xfer WHERE dst = a.id), 0) - coalesce((SELECT sum(amt) FROM xfer WHERE src = a.id), 0);`
	totalSQL      = `SELECT sum(bal) FROM acct;`
	transfersEach = 50
)

func TestDumpUnderLoad(t *testing.T) {
	testenv.RequireCommand(t, "sqlite3")
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "bank.db")
	sq(t, src, fmt.Sprintf(`PRAGMA journal_mode = wal;
CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
CREATE TABLE xfer (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amt INTEGER, pad TEXT);
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM c WHERE x < %d) INSERT INTO acct SELECT x, 1000 FROM c;
CREATE TABLE filler (body BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 4000) INSERT INTO filler SELECT randomblob(4000) FROM c;
`, accounts-1))

	var script strings.Builder
	script.WriteString(".timeout 10000\n")
	for i := 0; i < transfersEach; i++ {
		a, b := i%accounts, (i*7+3)%accounts
		fmt.Fprintf(&script, "BEGIN IMMEDIATE; UPDATE acct SET bal = bal - %[3]d WHERE id = %[1]d; INSERT INTO xfer(src, dst, amt, pad) VALUES (%[1]d, %[2]d, %[3]d, hex(randomblob(500))); UPDATE acct SET bal = bal + %[3]d WHERE id = %[2]d; COMMIT;\n", a, b, i%13+1)
	}
	stop := make(chan struct{})
	var rounds atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command("sqlite3", "-batch", "-bail", "-init", os.DevNull, src)
			cmd.Stdin = strings.NewReader(script.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("writer: %v\n%s", err, out)
				return
			}
			rounds.Add(1)
		}
	}()
	for rounds.Load() < 2 { // the writer is really writing
		time.Sleep(10 * time.Millisecond)
	}
	before := rounds.Load()
	var buf bytes.Buffer
	var m *engines.Manifest
	var err error
	for i := 0; i < 3; i++ { // several dumps, so that some overlap commits
		buf.Reset()
		m, err = newEngine(t, src).Dump(ctx, &buf)
		if err != nil {
			break
		}
	}
	after := rounds.Load()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Dump under load: %v", err)
	}
	if after == before {
		t.Errorf("the writer committed nothing while dumping; the test proves little")
	}
	t.Logf("writer rounds during the dumps: %d; dump %d bytes", after-before, buf.Len())

	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := newEngine(t, dst).Restore(ctx, &buf, false); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := strings.TrimSpace(sq(t, dst, "PRAGMA integrity_check;")); got != "ok" {
		t.Fatalf("integrity_check = %q", got)
	}
	sameSchema(t, src, dst)
	if got := strings.TrimSpace(sq(t, dst, invariantSQL)); got != "0" {
		t.Errorf("%s accounts break the invariant in the copy", got)
	}
	if got := strings.TrimSpace(sq(t, dst, totalSQL)); got != strconv.Itoa(1000*accounts) {
		t.Errorf("total in the copy = %s, want %d", got, 1000*accounts)
	}
	// The manifest counts what the copy holds.
	xfers := strings.TrimSpace(sq(t, dst, "SELECT count(*) FROM xfer;"))
	for _, tb := range m.Tables {
		if tb.Name == "xfer" && strconv.FormatInt(tb.Rows, 10) != xfers {
			t.Errorf("manifest says %d transfers, the copy holds %s", tb.Rows, xfers)
		}
		if tb.Estimate {
			t.Errorf("table %s count flagged as an estimate", tb.Name)
		}
	}
}

func TestDumpMissingFile(t *testing.T) {
	testenv.RequireCommand(t, "sqlite3")
	path := filepath.Join(t.TempDir(), "nope.db")
	var buf bytes.Buffer
	_, err := newEngine(t, path).Dump(context.Background(), &buf)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Dump of a missing file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dump created %s: %v", path, err)
	}
	if buf.Len() != 0 {
		t.Errorf("Dump wrote %d bytes", buf.Len())
	}
}

func TestDumpNotSQLite(t *testing.T) {
	testenv.RequireCommand(t, "sqlite3")
	dir := t.TempDir()
	for name, content := range map[string]string{
		"text.db":  "hello, this is not a database at all\n",
		"empty.db": "",
		"short.db": "SQLite",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := newEngine(t, path).Dump(context.Background(), &bytes.Buffer{})
		if !errors.Is(err, ErrNotDatabase) {
			t.Errorf("%s: Dump: %v, want ErrNotDatabase", name, err)
		}
	}
}

// corruptPages overwrites pages first..last (1-based) of db with garbage.
func corruptPages(t testing.TB, db string, first, last int) {
	t.Helper()
	ps, err := strconv.Atoi(strings.TrimSpace(sq(t, db, "PRAGMA page_size;")))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := bytes.Repeat([]byte{0xA5, 0x5A, 0x13, 0x37}, ps/4)
	for p := first; p <= last; p++ {
		if _, err := f.WriteAt(junk, int64(p-1)*int64(ps)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDumpCorrupt(t *testing.T) {
	testenv.RequireCommand(t, "sqlite3")
	db := filepath.Join(t.TempDir(), "bad.db")
	sq(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000) INSERT INTO t SELECT x, hex(randomblob(300)) FROM c;`)
	corruptPages(t, db, 5, 40)
	_, err := newEngine(t, db).Dump(context.Background(), &bytes.Buffer{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Dump of a corrupt database: %v, want ErrCorrupt", err)
	}
	t.Logf("error: %v", err)
}

// A dump whose index disagrees with its table passes VACUUM INTO's reads but
// not integrity_check; Restore must refuse it and leave no file behind.
func TestRestoreCorrupt(t *testing.T) {
	testenv.RequireCommand(t, "sqlite3")
	dir := t.TempDir()
	db := filepath.Join(dir, "bad.db")
	sq(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000) INSERT INTO t SELECT x, printf('v%08d', x) FROM c;
CREATE INDEX t_v ON t(v);`)
	// Rewrite a value behind the index's back.
	sq(t, db, `PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX t_v ON t(id)' WHERE name = 't_v';`)
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out", "new.db")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	err = newEngine(t, dst).Restore(context.Background(), bytes.NewReader(data), false)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "integrity_check") {
		t.Fatalf("Restore of a corrupt dump: %v, want ErrCorrupt quoting integrity_check", err)
	}
	t.Logf("error: %v", err)
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Errorf("Restore left %d files behind", len(ents))
	}
	// Not a database at all.
	err = newEngine(t, dst).Restore(context.Background(), strings.NewReader("garbage"), false)
	if !errors.Is(err, ErrNotDatabase) {
		t.Fatalf("Restore of garbage: %v, want ErrNotDatabase", err)
	}
}

func TestNewURL(t *testing.T) {
	for _, bad := range []string{"sqlite://relative/x.db", "sqlite:x.db", "sqlite:///", "sqlite:///a.db?mode=rw", "postgres:///a.db", "sqlite://host/a.db"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New(%q) accepted it", bad)
		}
	}
	e, err := New("sqlite:///var/lib/app/../app/data.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Path() != "/var/lib/app/data.db" || e.Source() != "sqlite:///var/lib/app/data.db" || e.Name() != "sqlite" {
		t.Errorf("path %q source %q", e.Path(), e.Source())
	}
}
