package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/engines/internal/secret"
	"github.com/bk-backup/bk/internal/testenv"
)

const testAddr = "127.0.0.1:5432"

// requirePG skips (or fails) the test unless the server and tools are there.
func requirePG(t testing.TB) {
	t.Helper()
	testenv.Require(t, "PostgreSQL", testAddr)
	testenv.RequireCommand(t, "pg_dump")
	testenv.RequireCommand(t, "psql")
}

// psqlExec runs SQL as postgres on db, failing the test on error.
func psqlExec(t testing.TB, db, sql string, extra ...string) {
	t.Helper()
	args := append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", db}, extra...)
	cmd := exec.Command("psql", args...)
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql on %s: %v\n%s", db, err, out)
	}
}

// tempDB names a fresh database, dropped before and after the test.
func tempDB(t testing.TB, name string) string {
	t.Helper()
	drop := func() {
		cmd := exec.Command("psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres",
			"-c", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("drop %s: %v\n%s", name, err, out)
		}
	}
	testenv.LockServer(t, "postgres", false)
	drop()
	t.Cleanup(drop)
	return name
}

func newEngine(t testing.TB, url string, opts Options) *Engine {
	t.Helper()
	e, err := New(url, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", url, err)
	}
	return e
}

// restrictRE matches pg_dump's random \restrict and \unrestrict lines.
var restrictRE = regexp.MustCompile(`(?m)^\\(un)?restrict \S+$`)

// pgDumpOf dumps db with pg_dump directly, without the random restrict key.
func pgDumpOf(t testing.TB, db string) string {
	t.Helper()
	out, err := exec.Command("pg_dump", "-h", "127.0.0.1", "-U", "postgres", db).Output()
	if err != nil {
		t.Fatalf("pg_dump %s: %v", db, err)
	}
	return restrictRE.ReplaceAllString(string(out), `\restrict KEY`)
}

const fixtureSQL = `
CREATE SEQUENCE counter_seq START 100 INCREMENT 7;
CREATE TABLE items (
  id serial PRIMARY KEY,
  name text,
  price numeric(12,2),
  data bytea,
  tags text[],
  doc jsonb,
  at timestamptz,
  ok boolean,
  n bigint DEFAULT nextval('counter_seq'),
  updated int DEFAULT 0
);
INSERT INTO items (name, price, data, tags, doc, at, ok) VALUES
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('ünïcödé ✓ 日本語 🐘', 12.34, '\x00ff10'::bytea, ARRAY['a','b,c','"q"'], '{"k":[1,2,{"x":null}]}', '2024-02-29 12:00:00+00', true),
  (E'tab\there\nnewline \\ backslash ''quote''', -0.01, decode(repeat('00ff', 1000), 'hex'), '{}', '[]', 'epoch', false),
  (repeat('large row ', 200000), 1e9, decode(repeat('deadbeef', 250000), 'hex'), NULL, NULL, now(), true);
INSERT INTO items (name, price) SELECT 'row ' || g, g / 3.0 FROM generate_series(1, 5000) g;
SELECT setval('counter_seq', 424242);
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated := OLD.updated + 1; RETURN NEW; END $$;
CREATE TRIGGER items_bump BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION bump();
UPDATE items SET price = price WHERE id <= 3;
CREATE SCHEMA other;
CREATE TABLE other."Mixed Case" (k int PRIMARY KEY, v text);
INSERT INTO other."Mixed Case" VALUES (1, 'one'), (2, NULL);
`

func TestRoundTrip(t *testing.T) {
	requirePG(t)
	src := tempDB(t, "bk_test_rt_src")
	dst := tempDB(t, "bk_test_rt_dst")
	psqlExec(t, "postgres", fmt.Sprintf("CREATE DATABASE %s;", src))
	psqlExec(t, src, fixtureSQL)
	psqlExec(t, src, "ANALYZE;")

	ctx := context.Background()
	var dump bytes.Buffer
	m, err := newEngine(t, "postgres://postgres@127.0.0.1/"+src, Options{}).Dump(ctx, &dump)
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if m.Engine != "postgres" || m.Tool != "pg_dump" || m.ToolVersion == "" || m.ServerVersion == "" || m.Database != src {
		t.Errorf("manifest: %+v", m)
	}
	if len(m.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", m.Warnings)
	}
	got := map[string]int64{}
	for _, tb := range m.Tables {
		if !tb.Estimate {
			t.Errorf("table %s not flagged as an estimate", tb.Name)
		}
		got[tb.Name] = tb.Rows
	}
	if _, ok := got["public.items"]; !ok || len(got) != 2 {
		t.Errorf("tables: %v", m.Tables)
	}
	if got["other.Mixed Case"] != 2 {
		t.Logf("row estimate of other.Mixed Case is %d (statistics may lag)", got["other.Mixed Case"])
	}

	dstEngine := newEngine(t, "postgresql://postgres@127.0.0.1:5432/"+dst, Options{})
	if err := dstEngine.Restore(ctx, bytes.NewReader(dump.Bytes()), false); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	a, b := pgDumpOf(t, src), pgDumpOf(t, dst)
	if a != b {
		t.Fatalf("dumps differ after the round trip:\n%s", firstDiff(a, b))
	}
	if !strings.Contains(b, "ünïcödé ✓ 日本語 🐘") || !strings.Contains(b, "424242") {
		t.Error("restored dump lacks expected content")
	}

	// A second restore into the now non-empty target is refused...
	err = dstEngine.Restore(ctx, bytes.NewReader(dump.Bytes()), false)
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a non-empty target: %v, want ErrNotEmpty", err)
	}
	// ...and with force it stops at the first SQL error, quoting psql.
	err = dstEngine.Restore(ctx, bytes.NewReader(dump.Bytes()), true)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "ERROR") {
		t.Fatalf("forced restore over existing objects: %v", err)
	}
	if c := pgDumpOf(t, dst); c != a {
		t.Fatalf("a failed restore changed the target:\n%s", firstDiff(a, c))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n- %.200s\n+ %.200s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}

func TestRestoreTruncatedRollsBack(t *testing.T) {
	requirePG(t)
	dst := tempDB(t, "bk_test_trunc_dst")
	dump := "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n" // no trailer
	e := newEngine(t, "postgres://postgres@127.0.0.1/"+dst, Options{})
	err := e.Restore(context.Background(), strings.NewReader(dump), false)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore of a truncated dump: %v, want ErrIncomplete", err)
	}
	n, err := e.relations(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("after a truncated restore: %d relations, %v; want 0", n, err)
	}
}

func TestRestoreSQLError(t *testing.T) {
	requirePG(t)
	dst := tempDB(t, "bk_test_sqlerr_dst")
	dump := "CREATE TABLE t (x int);\nINSERT INTO nosuch VALUES (1);\n--\n" + trailer + "\n--\n\n"
	e := newEngine(t, "postgres://postgres@127.0.0.1/"+dst, Options{})
	err := e.Restore(context.Background(), strings.NewReader(dump), false)
	if err == nil || !strings.Contains(err.Error(), `relation "nosuch" does not exist`) {
		t.Fatalf("restore with an SQL error: %v", err)
	}
	var xe *ExitError
	if !errors.As(err, &xe) || xe.Program != "psql" {
		t.Fatalf("error %v is not a psql *ExitError", err)
	}
	t.Log(err)
	if n, err := e.relations(context.Background()); err != nil || n != 0 {
		t.Fatalf("after a failed restore: %d relations, %v; want 0", n, err)
	}
}

func TestDumpMissingDatabase(t *testing.T) {
	requirePG(t)
	_, err := newEngine(t, "postgres://postgres@127.0.0.1/bk_no_such_db", Options{}).Dump(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `database "bk_no_such_db" does not exist`) {
		t.Fatalf("dump of a missing database: %v", err)
	}
	t.Log(err)
}

func TestDumpWrongUser(t *testing.T) {
	requirePG(t)
	_, err := newEngine(t, "postgres://bk_no_such_role@127.0.0.1/test", Options{}).Dump(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `role "bk_no_such_role" does not exist`) {
		t.Fatalf("dump as a missing role: %v", err)
	}
	t.Log(err)
}

func TestDumpServerDown(t *testing.T) {
	testenv.RequireCommand(t, "pg_dump")
	testenv.RequireCommand(t, "psql")
	_, err := newEngine(t, "postgres://postgres@127.0.0.1:1/test", Options{}).Dump(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("dump with the server down: %v", err)
	}
}

func TestDumpToolMissing(t *testing.T) {
	_, err := newEngine(t, "postgres://postgres@127.0.0.1/test", Options{BinDir: t.TempDir()}).Dump(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("dump with no pg_dump: %v", err)
	}
}

// cancelWriter cancels the dump's context after the first write.
type cancelWriter struct {
	cancel context.CancelFunc
	n      int
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	w.cancel()
	time.Sleep(10 * time.Millisecond)
	return len(p), nil
}

func TestDumpKilledMidway(t *testing.T) {
	requirePG(t)
	src := tempDB(t, "bk_test_kill_src")
	psqlExec(t, "postgres", fmt.Sprintf("CREATE DATABASE %s;", src))
	psqlExec(t, src, "CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 200000) g;")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{cancel: cancel}
	_, err := newEngine(t, "postgres://postgres@127.0.0.1/"+src, Options{}).Dump(ctx, w)
	if err == nil {
		t.Fatal("dump killed midway returned no error")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dump killed midway: %v, want context.Canceled", err)
	}
	t.Log(err)
	if w.n == 0 {
		t.Fatal("the dump never started")
	}
}

// failWriter fails every write.
type failWriter struct{}

var errSink = errors.New("sink failed")

func (failWriter) Write([]byte) (int, error) { return 0, errSink }

func TestDumpWriteError(t *testing.T) {
	requirePG(t)
	_, err := newEngine(t, "postgres://postgres@127.0.0.1/test", Options{}).Dump(context.Background(), failWriter{})
	if !errors.Is(err, errSink) {
		t.Fatalf("dump into a failing writer: %v", err)
	}
}

func TestTrailerCheck(t *testing.T) {
	complete := "--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\n\n--\n-- PostgreSQL database dump complete\n--\n\n"
	unrestrict := complete + `\unrestrict MauRXZlOpRJCmBAzUuk6n4ySl7rwi5D86Qw1JUoeP8UDWxwafCJHdgrUy0P9TCs` + "\n\n"
	long := strings.Repeat("INSERT INTO t VALUES (1);\n", 10000) + complete
	tests := []struct {
		name, stream string
		want         error
	}{
		{"complete", complete, nil},
		{"complete with unrestrict", unrestrict, nil},
		{"long", long, nil},
		{"empty", "", ErrEmpty},
		{"truncated", long[:len(long)/2], ErrIncomplete},
		{"cut inside the trailer", complete[:len(complete)-8], ErrIncomplete},
		{"data after the trailer", complete + "INSERT INTO t VALUES (2);\n", ErrIncomplete},
		{"trailer text inside a line", "SELECT '\n" + trailer + "';\n", ErrIncomplete},
		{"only blank lines", "\n\n\n", ErrIncomplete},
	}
	for _, tc := range tests {
		for _, step := range []int{1, 7, 1 << 20} {
			var c trailerCheck
			for s := tc.stream; len(s) > 0; {
				n := min(step, len(s))
				c.Write([]byte(s[:n]))
				s = s[n:]
			}
			if err := c.check(); !errors.Is(err, tc.want) {
				t.Errorf("%s (writes of %d): %v, want %v", tc.name, step, err, tc.want)
			}
			if c.n != int64(len(tc.stream)) {
				t.Errorf("%s: counted %d bytes, want %d", tc.name, c.n, len(tc.stream))
			}
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		url, source, err string
	}{
		{"postgres://app@db.example:6543/shop", "postgres://app@db.example:6543/shop", ""},
		{"postgresql://127.0.0.1/test", "postgres://127.0.0.1:5432/test", ""},
		{"postgres://[::1]/x", "postgres://[::1]:5432/x", ""},
		{"postgres://app:secret@host/db", "", "put the password in a file: --db-password-file or PGPASSFILE"},
		{"postgres://app:@host/db", "", "put the password in a file"},
		{"mysql://host/db", "", "scheme"},
		{"postgres://host/", "", "names no database"},
		{"postgres:///db", "", "names no host"},
		{"postgres://host/*", "postgres://host:5432/*", ""},
		{"postgres://host:99999/db", "", "bad port"},
		{"postgres://host/db?sslmode=disable", "", "no query"},
	}
	for _, tc := range tests {
		e, err := New(tc.url, Options{Env: []string{}})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("New(%q): %v, want an error containing %q", tc.url, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("New(%q): error leaks the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tc.url, err)
			continue
		}
		if e.Source() != tc.source {
			t.Errorf("New(%q).Source() = %q, want %q", tc.url, e.Source(), tc.source)
		}
	}
}

func TestEmptyPGPASSWORD(t *testing.T) {
	_, err := New("postgres://h/db", Options{Env: []string{"PGPASSWORD="}})
	if err == nil || !strings.Contains(err.Error(), "PGPASSWORD is set but empty") {
		t.Fatalf("empty PGPASSWORD: %v", err)
	}
	if _, err := New("postgres://h/db", Options{Env: []string{"PGPASSWORD=x"}}); err != nil {
		t.Fatalf("PGPASSWORD=x: %v", err)
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := New("postgres://u@h/db", Options{PasswordFile: write("open", "pw\n", 0o644)}); err == nil || !strings.Contains(err.Error(), "must not be group- or world-readable") {
		t.Fatalf("0644 password file: %v", err)
	}
	if _, err := New("postgres://u@h/db", Options{PasswordFile: write("group", "pw\n", 0o640)}); err == nil {
		t.Fatal("0640 password file accepted")
	}
	if _, err := New("postgres://u@h/db", Options{PasswordFile: write("empty", "\n", 0o600)}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty password file: %v", err)
	}
	e, err := New("postgres://u@h/db", Options{PasswordFile: write("ok", "p:w\\d\n", 0o600), Env: []string{"PGPASSWORD=other", "HOME=/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.password != `p:w\d` {
		t.Fatalf("password %q", e.password)
	}
	env, cleanup, err := e.childEnv()
	if err != nil {
		t.Fatal(err)
	}
	pass, ok := secret.LookupEnv(env, "PGPASSFILE")
	if !ok {
		t.Fatal("no PGPASSFILE in the child's environment")
	}
	if _, ok := secret.LookupEnv(env, "PGPASSWORD"); ok {
		t.Error("PGPASSWORD left in the child's environment")
	}
	fi, err := os.Stat(pass)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("temporary PGPASSFILE: %v, %v", fi, err)
	}
	b, _ := os.ReadFile(pass)
	if string(b) != "h:5432:*:u:p\\:w\\\\d\n" {
		t.Errorf("pgpass line %q", b)
	}
	cleanup()
	if _, err := os.Stat(pass); !os.IsNotExist(err) {
		t.Errorf("temporary PGPASSFILE not removed: %v", err)
	}
}

func TestVersionWarning(t *testing.T) {
	tests := []struct {
		tool string
		num  int
		warn bool
	}{
		{"15.20", 150020, false},
		{"16.1", 150020, false},
		{"14.9", 150020, true},
		{"15.0", 150020, false},
		{"9.6.24", 100005, true},
		{"9.6.24", 90624, false},
		{"9.5.1", 90624, true},
		{"garbage", 150020, false},
	}
	for _, tc := range tests {
		got := versionWarning(tc.tool, tc.num, "x")
		if (got != "") != tc.warn {
			t.Errorf("versionWarning(%s, %d) = %q, want warning %v", tc.tool, tc.num, got, tc.warn)
		}
	}
	if v := parseToolVersion("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"); v != "15.20" {
		t.Errorf("parseToolVersion = %q", v)
	}
}

// TestCredentialLeak dumps with a password file while scanning every
// process's cmdline and environ for the password.
func TestCredentialLeak(t *testing.T) {
	requirePG(t)
	const role = "bk_test_leak"
	const password = "bk-Leak-Pw-7f3a9c1e:with\\chars"
	t.Cleanup(func() {
		// Registered before tempDB, so it runs after the database is dropped.
		cmd := exec.Command("psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+role)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("drop role %s: %v\n%s", role, err, out)
		}
	})
	db := tempDB(t, "bk_test_leak_db")
	psqlExec(t, "postgres", fmt.Sprintf("DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE DATABASE %s OWNER %s;",
		role, role, strings.ReplaceAll(password, "'", "''"), db, role))
	psqlExec(t, db, "CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 50000) g;", "-U", role)

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, "postgres://"+role+"@127.0.0.1/"+db, Options{PasswordFile: pwFile})

	var (
		stop      atomic.Bool
		seen      sync.Map // program name → true
		leaks     []string
		pgpassBad []string
		mu        sync.Mutex
		done      = make(chan struct{})
	)
	sawDump := make(chan struct{})
	var sawOnce sync.Once
	self := fmt.Sprint(os.Getpid())
	go func() {
		defer close(done)
		for !stop.Load() {
			ents, _ := os.ReadDir("/proc")
			for _, ent := range ents {
				pid := ent.Name()
				if pid == self || pid[0] < '0' || pid[0] > '9' {
					continue
				}
				cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
				environ, _ := os.ReadFile("/proc/" + pid + "/environ")
				argv0 := filepath.Base(string(bytes.SplitN(cmdline, []byte{0}, 2)[0]))
				if argv0 == "pg_dump" || argv0 == "psql" {
					seen.Store(argv0, true)
					if argv0 == "pg_dump" && bytes.Contains(cmdline, []byte("bk_test_leak_db")) {
						sawOnce.Do(func() { close(sawDump) })
					}
					for _, kv := range bytes.Split(environ, []byte{0}) {
						if p, ok := bytes.CutPrefix(kv, []byte("PGPASSFILE=")); ok {
							if fi, err := os.Stat(string(p)); err == nil && fi.Mode().Perm() != 0o600 {
								mu.Lock()
								pgpassBad = append(pgpassBad, fmt.Sprintf("%s %v", p, fi.Mode()))
								mu.Unlock()
							}
						}
					}
				}
				for what, b := range map[string][]byte{"cmdline": cmdline, "environ": environ} {
					if bytes.Contains(b, []byte(password)) || bytes.Contains(b, []byte("bk-Leak-Pw")) {
						mu.Lock()
						leaks = append(leaks, fmt.Sprintf("pid %s (%s) %s", pid, argv0, what))
						mu.Unlock()
					}
				}
			}
		}
	}()
	// Hold the dump's stream until the scanner has seen pg_dump running.
	w := writerFunc(func(p []byte) (int, error) {
		select {
		case <-sawDump:
		case <-time.After(10 * time.Second):
		}
		return len(p), nil
	})
	var out bytes.Buffer
	m, err := e.Dump(context.Background(), io.MultiWriter(w, &out))
	stop.Store(true)
	<-done
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if _, ok := seen.Load("pg_dump"); !ok {
		t.Fatal("the scanner never saw pg_dump; the test proves nothing")
	}
	if _, ok := seen.Load("psql"); !ok {
		t.Log("the scanner did not catch psql (short-lived)")
	}
	if len(leaks) > 0 {
		t.Fatalf("password leaked: %v", leaks)
	}
	if len(pgpassBad) > 0 {
		t.Fatalf("PGPASSFILE with bad mode: %v", pgpassBad)
	}
	if strings.Contains(fmt.Sprintf("%+v %s", m, e.Source()), "Leak-Pw") || strings.Contains(out.String(), "Leak-Pw") {
		t.Fatal("password in the manifest, source or stream")
	}
	// No temp pgpass file is left behind.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "bk-pgpass-*"))
	for _, p := range left {
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("Leak-Pw")) {
			t.Errorf("temporary PGPASSFILE %s left behind", p)
		}
	}
	// Errors do not carry it either.
	bad := newEngine(t, "postgres://"+role+"@127.0.0.1/bk_no_such_db", Options{PasswordFile: pwFile})
	if _, err := bad.Dump(context.Background(), io.Discard); err == nil || strings.Contains(err.Error(), "Leak-Pw") {
		t.Fatalf("failing dump: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestDumpStderrErrorExit0 runs a fake pg_dump that writes a complete-
// looking dump, reports an error on stderr and exits 0: the dump fails,
// quoting the error line.
func TestDumpStderrErrorExit0(t *testing.T) {
	requirePG(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal(err)
	}
	realDump, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(psql, filepath.Join(bin, "psql")); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
if [ "$1" = "--version" ]; then exec ` + realDump + ` --version; fi
echo '--'
echo '-- PostgreSQL database dump'
echo '--'
echo 'SELECT 1;'
echo 'pg_dump: error: query failed: ERROR:  permission denied for table secret' >&2
echo 'pg_dump: detail: Query was: LOCK TABLE public.secret IN ACCESS SHARE MODE' >&2
echo '--'
echo '-- PostgreSQL database dump complete'
echo '--'
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m, err := newEngine(t, "postgres://postgres@"+testAddr+"/postgres", Options{BinDir: bin}).Dump(context.Background(), &out)
	var se *StderrError
	if !errors.As(err, &se) || m != nil {
		t.Fatalf("Dump = %+v, %v; want a StderrError", m, err)
	}
	if !strings.Contains(err.Error(), "pg_dump: error: query failed") || !strings.Contains(err.Error(), "Query was") {
		t.Fatalf("error does not quote stderr: %v", err)
	}
	// The stream itself was complete: only stderr tells the failure.
	if !strings.Contains(out.String(), trailer) {
		t.Fatalf("the fake wrote no trailer:\n%s", out.String())
	}
	t.Log(err)

	// A warning is not a failure.
	script = strings.Replace(script, "pg_dump: error: query failed", "pg_dump: warning: something odd", 1)
	if err := os.WriteFile(filepath.Join(bin, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := newEngine(t, "postgres://postgres@"+testAddr+"/postgres", Options{BinDir: bin}).Dump(context.Background(), io.Discard); err != nil {
		t.Fatalf("dump with a warning on stderr: %v", err)
	}
}
