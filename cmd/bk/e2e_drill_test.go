package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/testenv"
)

// myRun runs SQL through the MariaDB client as root and returns its output.
func myRun(t testing.TB, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "--batch", "--skip-column-names")
	cmd.Env = baseEnv()
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, stderr.Bytes())
	}
	return stdout.String()
}

// drillLeftovers lists the bk_drill_* databases on both servers.
func drillLeftovers(t testing.TB) string {
	t.Helper()
	pg := pgRun(t, nil, "psql", "-X", "-A", "-t", "-d", "postgres", "-c", `SELECT datname FROM pg_database WHERE datname LIKE 'bk\_drill\_%'`)
	my := myRun(t, `SHOW DATABASES LIKE 'bk\_drill\_%'`)
	return strings.TrimSpace(pg + my)
}

// TestE2ERestoreDrill snapshots a PostgreSQL, a MariaDB and a SQLite
// database and drills the latest snapshot of each with
// `bk check --restore-test`.
func TestE2ERestoreDrill(t *testing.T) {
	testenv.Require(t, "PostgreSQL", pgAddr)
	testenv.Require(t, "MariaDB", "127.0.0.1:3306")
	for _, prog := range []string{"pg_dump", "psql", "createdb", "dropdb", "mariadb", "sqlite3"} {
		testenv.RequireCommand(t, prog)
	}
	pgDB := createDB(t, "drill")
	pgRun(t, nil, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pgDB, "-c", `
		CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1234) g;
		CREATE TABLE "odd name" (x int);
		INSERT INTO "odd name" VALUES (1), (2);`)
	myDB := fmt.Sprintf("bk_e2e_drill_%d", time.Now().UnixNano())
	myRun(t, "CREATE DATABASE "+myDB+"; USE "+myDB+`;
		CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40));
		INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_777;
		CREATE TABLE e (id INT);`)
	t.Cleanup(func() { myRun(t, "DROP DATABASE IF EXISTS "+myDB) })
	dir := t.TempDir()
	if out, err := exec.Command("sqlite3", dir+"/app.db", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); "+
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 321) INSERT INTO t SELECT i, hex(randomblob(8)) FROM n;").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}

	r := newRepo(t)
	r.must(nil, "snapshot", "postgres://postgres@127.0.0.1:5432/"+pgDB)
	r.must(nil, "snapshot", "mysql://root@127.0.0.1:3306/"+myDB)
	r.must(nil, "snapshot", "sqlite://"+dir+"/app.db")
	r.must(nil, "snapshot", "--name", "plain", "--", "echo", "hello")

	scratch := []string{"--scratch", "postgres://postgres@127.0.0.1:5432", "--scratch", "mysql://root@127.0.0.1:3306"}
	out := string(r.must(nil, append([]string{"check", "--restore-test"}, scratch...)...).stdout)
	for _, want := range []string{
		"pass postgres:" + pgDB, "1236 rows checked",
		"pass mysql:" + myDB, "777 rows checked",
		"pass sqlite:app.db", "321 rows checked",
		"3 passed, 0 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("drill output lacks %q:\n%s", want, out)
		}
	}
	if left := drillLeftovers(t); left != "" {
		t.Fatalf("drill databases left behind: %s", left)
	}

	// --json gives the same as data.
	var rep drillReport
	decodeJSON(t, r.must(nil, append([]string{"check", "--restore-test", "--json"}, scratch...)...).stdout, &rep)
	if rep.Passed != 3 || rep.Failed != 0 || len(rep.Drills) != 3 {
		t.Fatalf("json report %+v", rep)
	}

	// A scratch server that is down fails its drill (exit 1) and leaves
	// nothing behind; a missing --scratch fails the server engines.
	res := r.run(nil, "check", "--restore-test", "--scratch", "postgres://postgres@127.0.0.1:1", "--scratch", "mysql://root@127.0.0.1:3306")
	res.wantFail(t, exitFailure, "restore drill failed")
	if s := string(res.stdout); !strings.Contains(s, "FAIL postgres:"+pgDB) || !strings.Contains(s, "pass mysql:"+myDB) {
		t.Fatalf("drill against a closed port:\n%s", s)
	}
	res = r.run(nil, "check", "--restore-test")
	res.wantFail(t, exitFailure)
	if s := string(res.stdout); !strings.Contains(s, "no --scratch for postgres") || !strings.Contains(s, "pass sqlite:app.db") {
		t.Fatalf("drill without --scratch:\n%s", s)
	}
	if left := drillLeftovers(t); left != "" {
		t.Fatalf("drill databases left behind: %s", left)
	}
	r.run(nil, "check", "--restore-test", "--scratch", "postgres://postgres@127.0.0.1:5432/x").wantFail(t, exitUsage, "names a database")
	r.run(nil, "check", "latest").wantFail(t, exitUsage)
}

// TestE2EDumpStderrError runs a snapshot through a fake mariadb-dump that
// writes a complete-looking dump, reports an error on stderr and exits 0:
// the snapshot fails and none is saved.
func TestE2EDumpStderrError(t *testing.T) {
	testenv.Require(t, "MariaDB", "127.0.0.1:3306")
	testenv.RequireCommand(t, "mariadb")
	db := fmt.Sprintf("bk_e2e_stderr_%d", time.Now().UnixNano())
	myRun(t, "CREATE DATABASE "+db)
	t.Cleanup(func() { myRun(t, "DROP DATABASE IF EXISTS "+db) })
	bin := t.TempDir()
	writeFile(t, bin+"/mariadb-dump", []byte(`#!/bin/sh
if [ "$1" = "--version" ]; then echo 'mariadb-dump fake'; exit 0; fi
echo 'CREATE TABLE t (id INT);'
echo 'mariadb-dump: Got error: 2013: Lost connection to server during query when dumping table t' >&2
echo '-- Dump completed on 2024-01-01  0:00:00'
`))
	if err := os.Chmod(bin+"/mariadb-dump", 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	res := r.runEnv([]string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "snapshot", "mysql://root@127.0.0.1:3306/"+db)
	res.wantFail(t, exitSource, "reported an error", "Lost connection")
	if ids := r.snapshotIDs(); len(ids) != 0 {
		t.Fatalf("a failed dump saved snapshots %v", ids)
	}
}
