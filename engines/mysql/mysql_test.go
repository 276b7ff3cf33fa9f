package mysql

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

	"github.com/bk-backup/bk/internal/testenv"
)

const addr = "127.0.0.1:3306"

// requireServer skips (or fails) the test without a server or tools.
func requireServer(t testing.TB) {
	t.Helper()
	testenv.Require(t, "MariaDB", addr)
	testenv.RequireCommand(t, "mariadb-dump")
	testenv.RequireCommand(t, "mariadb")
}

// cleanEnv is bk's environment without MYSQL_PWD and with a HOME that has no
// .my.cnf, so only the test decides where a password comes from.
func cleanEnv(t testing.TB) []string {
	t.Helper()
	env := []string{"HOME=" + t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYSQL_PWD=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return env
}

// admin runs SQL as root through the client.
func admin(t testing.TB, sql string) string {
	t.Helper()
	cmd := exec.Command("mariadb", "-h127.0.0.1", "-P3306", "-uroot", "--default-character-set=utf8mb4", "--batch", "--skip-column-names")
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 2000 {
			out = out[len(out)-2000:]
		}
		t.Fatalf("admin SQL failed: %v\n…%s", err, out)
	}
	return string(out)
}

var dbSeq atomic.Int64

// tempDB returns the name of a database that is dropped when the test ends;
// create says whether it is created now.
func tempDB(t testing.TB, create bool) string {
	t.Helper()
	name := fmt.Sprintf("bk_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	t.Cleanup(func() { admin(t, "DROP DATABASE IF EXISTS "+quoteIdent(name)) })
	if create {
		admin(t, "CREATE DATABASE "+quoteIdent(name)+" CHARACTER SET utf8mb4")
	}
	return name
}

func rootEngine(t testing.TB, db string) *Engine {
	t.Helper()
	e, err := New("mysql://root@"+addr+"/"+db, Options{Env: cleanEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// populate fills db with many types and objects.
func populate(t testing.TB, db string) {
	t.Helper()
	admin(t, "USE "+quoteIdent(db)+";\n"+`
CREATE TABLE things (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) CHARACTER SET utf8mb4,
  note MEDIUMTEXT,
  price DECIMAL(12,4),
  ratio DOUBLE,
  born DATE,
  seen DATETIME(6),
  flags SET('a','b','c'),
  kind ENUM('x','y'),
  data BLOB,
  big LONGBLOB,
  doc JSON
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, thing INT, at VARCHAR(20));
INSERT INTO things (name, note, price, ratio, born, seen, flags, kind, data, big, doc) VALUES
  ('plain', 'x', 1.5, 0.25, '2020-01-02', '2020-01-02 03:04:05.123456', 'a,c', 'x', X'00FF0A0D275C22', NULL, '{"k": [1, 2]}'),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('ünïcødé 日本語 😀 emoji', 'tab\there\nnewline ''quote'' \\ back', -99999999.9999, 1e308, '1000-01-01', '9999-12-31 23:59:59', '', 'y', X'', REPEAT('z', 10), 'null'),
  ('large', REPEAT('ä', 60000), 0, 0, '2000-02-29', NOW(6), 'b', 'x', RANDOM_BYTES(1024), REPEAT(X'00FF', 1 << 19), '[]');
DELETE FROM things WHERE name = 'plain';
ALTER TABLE things AUTO_INCREMENT = 1000;
CREATE VIEW named AS SELECT id, name FROM things WHERE name IS NOT NULL;
CREATE TRIGGER things_ai AFTER INSERT ON things FOR EACH ROW INSERT INTO audit (thing, at) VALUES (NEW.id, 'insert');
DELIMITER //
CREATE PROCEDURE count_things(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM things; END //
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2 //
DELIMITER ;
INSERT INTO things (name) VALUES ('after trigger');
ANALYZE TABLE things, audit;
`)
}

// normalize drops what legitimately differs between two dumps of equal data:
// the date in the trailer and the database name in comments.
func normalize(dump []byte, db string) string {
	var out []string
	for _, l := range strings.Split(string(dump), "\n") {
		if strings.HasPrefix(l, trailer) {
			continue
		}
		if strings.HasPrefix(l, "-- ") { // comments name the database
			l = strings.ReplaceAll(l, db, "DB")
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestRoundTrip(t *testing.T) {
	requireServer(t)
	ctx := context.Background()
	src := tempDB(t, true)
	populate(t, src)

	var dump bytes.Buffer
	m, err := rootEngine(t, src).Dump(ctx, &dump)
	if err != nil {
		t.Fatal(err)
	}
	if m.Engine != "mysql" || m.Database != src || m.Tool != "mariadb-dump" || !strings.Contains(m.ServerVersion, "MariaDB") || m.ToolVersion == "" {
		t.Errorf("manifest: %+v", m)
	}
	if len(m.Tables) != 2 || m.Tables[0].Name != "audit" || m.Tables[1].Name != "things" || !m.Tables[1].Estimate || m.Tables[1].Rows < 1 {
		t.Errorf("manifest tables: %+v", m.Tables)
	}
	for _, want := range []string{"CREATE TABLE `things`", "VIEW `named`", "TRIGGER", "PROCEDURE `count_things`", "FUNCTION `twice`", "AUTO_INCREMENT=", "0x00FF00FF"} {
		if !strings.Contains(dump.String(), want) {
			t.Errorf("dump lacks %q", want)
		}
	}

	dst := tempDB(t, false)
	dstEng := rootEngine(t, dst)
	if err := dstEng.Restore(ctx, bytes.NewReader(dump.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := dstEng.Dump(ctx, &again); err != nil {
		t.Fatal(err)
	}
	a, b := normalize(dump.Bytes(), src), normalize(again.Bytes(), dst)
	if a != b {
		al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
		for i := 0; i < len(al) && i < len(bl); i++ {
			if al[i] != bl[i] {
				t.Fatalf("dumps differ at line %d:\nsrc: %.300s\ndst: %.300s", i+1, al[i], bl[i])
			}
		}
		t.Fatalf("dumps differ in length: %d vs %d lines", len(al), len(bl))
	}
	// The objects work in the restored database.
	got := admin(t, "USE "+quoteIdent(dst)+"; CALL count_things(@n); SELECT @n, twice(21), (SELECT COUNT(*) FROM named);"+
		"INSERT INTO things (name) VALUES ('new'); SELECT MAX(id) FROM things; SELECT COUNT(*) FROM audit;")
	if want := "4\t42\t3\n1001\n2\n"; got != want {
		t.Errorf("restored objects: got %q, want %q", got, want)
	}

	// The target is now non-empty: refused without force, accepted with it.
	err = dstEng.Restore(ctx, bytes.NewReader(dump.Bytes()), false)
	if !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore into non-empty target: %v", err)
	}
	if err := dstEng.Restore(ctx, bytes.NewReader(dump.Bytes()), true); err != nil {
		t.Errorf("forced restore: %v", err)
	}
}

func TestRestoreStopsAtFirstError(t *testing.T) {
	requireServer(t)
	dst := tempDB(t, false)
	sql := "CREATE TABLE a (x INT);\nSELEC 1;\nCREATE TABLE b (x INT);\n"
	err := rootEngine(t, dst).Restore(context.Background(), strings.NewReader(sql), false)
	if err == nil || !strings.Contains(err.Error(), "ERROR 1064") || !strings.Contains(err.Error(), "at line 2") {
		t.Fatalf("got %v, want the client's syntax error at line 2", err)
	}
	if got := admin(t, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+quoteString(dst)); got != "1\n" {
		t.Errorf("tables after failed restore: %q, want only the one before the error", got)
	}
	t.Log(err)
}

func TestRestoreInputError(t *testing.T) {
	requireServer(t)
	dst := tempDB(t, false)
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("CREATE TABLE a (x INT);\n"), failingReader{boom})
	err := rootEngine(t, dst).Restore(context.Background(), r, false)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the input's error", err)
	}
}

func TestMissingDatabase(t *testing.T) {
	requireServer(t)
	e := rootEngine(t, "bk_no_such_database")
	var buf bytes.Buffer
	_, err := e.Dump(context.Background(), &buf)
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "bk_no_such_database") {
		t.Fatalf("got %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes", buf.Len())
	}
	t.Log(err)
}

func TestWrongUser(t *testing.T) {
	requireServer(t)
	e, err := New("mariadb://bk_no_such_user@"+addr+"/test", Options{Env: cleanEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Dump(context.Background(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "Access denied") || !strings.Contains(err.Error(), "connect to mariadb://bk_no_such_user@") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
}

// cancelWriter cancels the dump's context on its first write and then
// dawdles, so the dump is killed while it runs.
type cancelWriter struct {
	cancel context.CancelFunc
	once   sync.Once
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { w.cancel(); time.Sleep(100 * time.Millisecond) })
	return len(p), nil
}

func TestKilledDump(t *testing.T) {
	requireServer(t)
	src := tempDB(t, true)
	populate(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := rootEngine(t, src).Dump(ctx, &cancelWriter{cancel: cancel})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("got %v, want a killed dump", err)
	}
	t.Log(err)
}

func TestCheckTrailer(t *testing.T) {
	full := "-- MariaDB dump\nINSERT INTO t VALUES (1);\n/*!40101 SET x */;\n\n-- Dump completed on 2024-01-01  1:02:03\n"
	if err := checkTrailer([]byte(full)); err != nil {
		t.Fatalf("complete dump: %v", err)
	}
	if err := checkTrailer([]byte("-- Dump completed\n")); err != nil {
		t.Fatalf("dump without date: %v", err)
	}
	cut := strings.Index(full, "-- Dump completed")
	for _, n := range []int{1, 10, cut, cut + 5, cut - 1} {
		if err := checkTrailer([]byte(full[:n])); !errors.Is(err, ErrIncomplete) {
			t.Errorf("truncated at %d: got %v", n, err)
		}
	}
	if err := checkTrailer(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	// The trailer must be the last line, not merely present.
	if err := checkTrailer([]byte(full + "INSERT INTO t VALUES (2);\n")); !errors.Is(err, ErrIncomplete) {
		t.Errorf("data after trailer: %v", err)
	}
	// The tail buffer keeps the end of a long stream.
	tail := &byteTail{max: 64}
	for i := 0; i < 1000; i++ {
		tail.Write([]byte("INSERT INTO t VALUES (1);\n"))
	}
	tail.Write([]byte(strings.Repeat("y", 100) + "\n"))
	tail.Write([]byte("-- Dump completed on x\n"))
	if err := checkTrailer(tail.bytes()); err != nil || len(tail.bytes()) != 64 {
		t.Errorf("tail: %v, %d bytes", err, len(tail.bytes()))
	}
}

func TestNew(t *testing.T) {
	good := map[string]string{
		"mysql://root@127.0.0.1/app":    "mysql://root@127.0.0.1:3306/app",
		"mariadb://db.example:3307/app": "mariadb://db.example:3307/app",
		"mysql://backup@[::1]:3306/*":   "mysql://backup@[::1]:3306/*",
		"mysql://u@h/my%20db":           "mysql://u@h:3306/my%20db",
	}
	for in, want := range good {
		e, err := New(in, Options{})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := e.Source(); got != want {
			t.Errorf("%s: Source %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{
		"mysql://root:s3cretpw@h/app", "postgres://h/app", "mysql://h", "mysql://h/", "mysql:///app",
		"mysql://h:99999/app", "mysql://h/a/b", "mysql://h/app?x=1", "mysql://h/-app", "mysql://root:s3cretpw@h:bad/app",
	} {
		_, err := New(in, Options{})
		if err == nil {
			t.Errorf("%s: accepted", in)
		} else if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("%s: error leaks the password: %v", in, err)
		}
	}
}

func TestOptionValue(t *testing.T) {
	for _, pw := range []string{`plain`, `a"b#c`, `it's #1`, `back\slash\`, "tab\tnl\n", ` spaced `} {
		v, err := optionValue(pw)
		if err != nil {
			t.Errorf("%q: %v", pw, err)
			continue
		}
		if q := v[0]; v[len(v)-1] != q || strings.ContainsRune(v[1:len(v)-1], rune(q)) {
			t.Errorf("%q: badly quoted as %s", pw, v)
		}
	}
	if _, err := optionValue(`a"b'c#d`); err == nil {
		t.Error("unrepresentable password accepted")
	}
}

func TestPasswordSources(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, []byte("pw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644) // in case of a restrictive umask
	e, err := New("mysql://root@"+addr+"/test", Options{PasswordFile: loose, Env: cleanEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Dump(context.Background(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 password file: got %v", err)
	}

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	e.opts.PasswordFile = empty
	if _, err := e.Dump(context.Background(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty password file: got %v", err)
	}

	e.opts = Options{Env: append(cleanEnv(t), "MYSQL_PWD=")}
	if _, err := e.Dump(context.Background(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "MYSQL_PWD is set but empty") {
		t.Errorf("empty MYSQL_PWD: got %v", err)
	}
}

// TestCredentialLeak dumps as a user with a password while scanning the
// command line and environment of every process for it.
func TestCredentialLeak(t *testing.T) {
	requireServer(t)
	const pw = `bk"Leak\S3cret x#1-` + "q9Zt"
	src := tempDB(t, true)
	admin(t, "USE "+quoteIdent(src)+"; CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB);"+
		"INSERT INTO t VALUES (1, REPEAT('x', 2000000)), (2, NULL);")
	admin(t, "DROP USER IF EXISTS 'bk_leak'@'%'; CREATE USER 'bk_leak'@'%' IDENTIFIED BY "+quoteString(pw)+
		"; GRANT ALL ON "+quoteIdent(src)+".* TO 'bk_leak'@'%';")
	t.Cleanup(func() { admin(t, "DROP USER IF EXISTS 'bk_leak'@'%'") })

	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "mysql://bk_leak@" + addr + "/" + src

	cases := []struct {
		name string
		opts Options
	}{
		{"password file", Options{PasswordFile: pwFile, Env: cleanEnv(t)}},
		{"MYSQL_PWD", Options{Env: append(cleanEnv(t), "MYSQL_PWD="+pw)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(url, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var leaks []string
			var sawDump, sawFile atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					l, dump, file := scanProcs(pw, tmp)
					leaks = append(leaks, l...)
					sawDump.Add(dump)
					sawFile.Add(file)
				}
			}()
			var buf bytes.Buffer
			m, err := e.Dump(context.Background(), &slowWriter{w: &buf})
			close(stop)
			<-done
			if err != nil {
				t.Fatal(err)
			}
			if len(leaks) > 0 {
				t.Fatalf("password found in: %v", leaks)
			}
			if sawDump.Load() == 0 {
				t.Fatal("the scan never saw mariadb-dump running")
			}
			if sawFile.Load() == 0 {
				t.Error("the scan never saw the 0600 option file")
			}
			if strings.Contains(fmt.Sprintf("%+v", m), pw) || bytes.Contains(buf.Bytes(), []byte(pw)) {
				t.Error("password in manifest or dump")
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("temporary files left behind: %v", ents)
			}
		})
	}
}

// slowWriter pauses on its first write so the dump outlives a few scans.
type slowWriter struct {
	w    *bytes.Buffer
	once sync.Once
}

func (s *slowWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { time.Sleep(300 * time.Millisecond) })
	return s.w.Write(p)
}

var procRe = regexp.MustCompile(`^/proc/[0-9]+$`)

// scanProcs looks for pw in every process's cmdline and environ, counts
// running mariadb-dump processes, and checks option files under tmp.
func scanProcs(pw, tmp string) (leaks []string, dumps, files int64) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if !procRe.MatchString(d) {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			if bytes.Contains(b, []byte(pw)) {
				leaks = append(leaks, filepath.Join(d, f))
			}
			if f == "cmdline" && bytes.Contains(b, []byte("mariadb-dump\x00--defaults-extra-file=")) {
				dumps++
			}
		}
	}
	opts, _ := filepath.Glob(filepath.Join(tmp, "bk-mysql-*", "client.cnf"))
	for _, o := range opts {
		if fi, err := os.Stat(o); err == nil {
			if fi.Mode().Perm() != 0o600 {
				leaks = append(leaks, fmt.Sprintf("%s has mode %o", o, fi.Mode().Perm()))
			}
			files++
		}
	}
	return leaks, dumps, files
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestScanProcsFindsLeaks shows the leak scan would catch a password in argv
// or the environment.
func TestScanProcsFindsLeaks(t *testing.T) {
	const pw = "bk-scan-control-7Qx"
	cmd := exec.Command("sh", "-c", "sleep 5; :", pw)
	cmd.Env = []string{"X=" + pw}
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(50 * time.Millisecond)
	leaks, _, _ := scanProcs(pw, t.TempDir())
	if len(leaks) < 2 {
		t.Fatalf("scan found %v, want the child's cmdline and environ", leaks)
	}
}

// TestDumpStderrErrorExit0 puts a fake mariadb-dump first on PATH that
// writes a dump with the completion line, reports an error on stderr and
// exits 0: the dump fails, quoting the error line.
func TestDumpStderrErrorExit0(t *testing.T) {
	requireServer(t)
	db := tempDB(t, true)
	bin := t.TempDir()
	script := `#!/bin/sh
if [ "$1" = "--version" ]; then echo 'mariadb-dump from 11.0.0-MariaDB, client 10.19'; exit 0; fi
echo '-- MariaDB dump 10.19'
echo 'CREATE TABLE t (id INT);'
echo 'mariadb-dump: Error 1412: Table definition has changed, please retry transaction when dumping table ` + "`t`" + ` at row: 0' >&2
echo '-- Dump completed on 2024-01-01  0:00:00'
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "mariadb-dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out bytes.Buffer
	m, err := rootEngine(t, db).Dump(context.Background(), &out)
	var se *StderrError
	if !errors.As(err, &se) || m != nil {
		t.Fatalf("Dump = %+v, %v; want a StderrError", m, err)
	}
	if !strings.Contains(err.Error(), "mariadb-dump: Error 1412") {
		t.Fatalf("error does not quote the line: %v", err)
	}
	if checkTrailer(out.Bytes()) != nil {
		t.Fatalf("the fake wrote no trailer:\n%s", out.String())
	}
	t.Log(err)
	for _, line := range []string{"mysqldump: Got error: 2013: Lost connection", "mysqldump: Couldn't execute 'SHOW FIELDS': x", "mariadb-dump: Error: 'Access denied' when trying to dump tablespaces"} {
		if !dumpFailure.MatchString(line) {
			t.Errorf("%q is not taken as a failure", line)
		}
	}
	if dumpFailure.MatchString("mariadb-dump: Deprecated program name") {
		t.Error("a notice is taken as a failure")
	}
}
