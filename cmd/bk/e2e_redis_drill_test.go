package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/internal/testenv"
)

// redisDrillDB is the logical database TestE2ERedisRestoreDrill owns: it
// flushes only that one, as other tests use the server at the same time.
const redisDrillDB = "7"

// redisCLI runs commands (one per line) through redis-cli against the drill
// database and returns the output.
func redisCLI(t testing.TB, commands string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "-p", "6379", "-n", redisDrillDB)
	cmd.Stdin = strings.NewReader(commands)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, stderr.Bytes())
	}
	return stdout.String()
}

// TestE2ERedisRestoreDrill snapshots the Redis server and drills the
// snapshot with `bk check --restore-test`: the RDB is loaded into a
// throwaway redis-server and its key counts are compared with the
// manifest's, keys that expired in between being allowed for.
func TestE2ERedisRestoreDrill(t *testing.T) {
	testenv.Require(t, "Redis", "127.0.0.1:6379")
	testenv.RequireCommand(t, "redis-cli")
	serverBin := testenv.RequireCommand(t, "redis-server")
	if n := strings.TrimSpace(redisCLI(t, "DBSIZE\n")); n != "0" {
		t.Fatalf("logical database %s holds %s keys; the test needs it empty", redisDrillDB, n)
	}
	t.Cleanup(func() { redisCLI(t, "FLUSHDB\n") })

	// 3000 keys of every type; 40 with a long TTL and 10 with one short
	// enough to pass between the snapshot and the drill.
	var b strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&b, "SET str:%d value-%d\n", i, i)
	}
	for i := range 300 {
		fmt.Fprintf(&b, "HSET hash:%d a %d b two c three\n", i, i)
		fmt.Fprintf(&b, "RPUSH list:%d x y %d\n", i, i)
		fmt.Fprintf(&b, "SADD set:%d m1 m2 %d\n", i, i)
		fmt.Fprintf(&b, "ZADD zset:%d 1.5 one %d two\n", i, i)
	}
	for i := range 240 {
		fmt.Fprintf(&b, "XADD stream:%d * f %d\n", i, i)
	}
	for i := range 40 {
		fmt.Fprintf(&b, "SET ttl:%d v EX 3600\n", i)
	}
	const shortTTL = 9 * time.Second
	for i := range 10 {
		fmt.Fprintf(&b, "SET short:%d v PX %d\n", i, shortTTL.Milliseconds())
	}
	written := time.Now()
	redisCLI(t, b.String())
	const total = 1500 + 4*300 + 240 + 40 + 10

	r := newRepo(t)
	var snap snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", "redis://127.0.0.1:6379", "--json").stdout, &snap)
	var list []struct {
		ID       string            `json:"id"`
		Manifest *engines.Manifest `json:"manifest"`
	}
	decodeJSON(t, r.must(nil, "snapshots", "--json").stdout, &list)
	if len(list) != 1 || list[0].Manifest == nil || list[0].Manifest.Keyspace == nil {
		t.Fatalf("snapshots: %+v", list)
	}
	var db7 engines.KeyspaceDB
	for _, d := range list[0].Manifest.Keyspace.DBs {
		if strconv.Itoa(d.DB) == redisDrillDB {
			db7 = d
		}
	}
	// The short keys may already be gone when the server forks (the
	// diskless sync waits 5 s first); all the others are there.
	if db7.Keys != total && db7.Keys != total-10 || db7.Expires != db7.Keys-(total-50) {
		t.Fatalf("manifest counts for db%s: %+v, want %d keys (or %d), the TTL ones expiring", redisDrillDB, db7, total, total-10)
	}
	t.Logf("manifest keyspace: %+v", list[0].Manifest.Keyspace)
	time.Sleep(time.Until(written.Add(shortTTL + time.Second)))

	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp}
	res := r.runEnv(env, "check", "--restore-test", "--json")
	if res.code != 0 {
		t.Fatalf("drill failed:\n%s", res)
	}
	var rep drillReport
	decodeJSON(t, res.stdout, &rep)
	if rep.Passed != 1 || len(rep.Drills) != 1 {
		t.Fatalf("report %+v", rep)
	}
	d := rep.Drills[0]
	if d.Engine != "redis" || d.Status != drillPass || !strings.HasPrefix(d.Target, "redis://127.0.0.1:") || d.RestoreSeconds <= 0 {
		t.Fatalf("drill %+v", d)
	}
	var checked bool
	for _, tb := range d.Tables {
		if tb.Name == "db"+redisDrillDB {
			checked = true
			// The short keys expired before the load: the restore has fewer
			// keys than the manifest, within its expiring keys.
			if tb.Manifest != db7.Keys || tb.Restored != total-10 || tb.Expiring != db7.Expires || !tb.OK {
				t.Errorf("drill of db%s: %+v, want %d restored of %d", redisDrillDB, tb, total-10, db7.Keys)
			}
		}
	}
	if !checked || d.RowsChecked < total-10 {
		t.Errorf("drill checked %d keys in %+v", d.RowsChecked, d.Tables)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the drill left %d entries in TMPDIR: %v", len(left), left)
	}
	out := string(r.runEnv(env, "check", "--restore-test").stdout)
	if !strings.Contains(out, "pass redis:127.0.0.1:6379") || !strings.Contains(out, "keys checked") || !strings.Contains(out, "1 passed, 0 failed") {
		t.Errorf("drill output:\n%s", out)
	}

	// Without redis-server the drill is skipped, with the reason.
	res = r.runEnv([]string{"PATH=" + t.TempDir(), "TMPDIR=" + tmp}, "check", "--restore-test")
	if res.code != 0 {
		t.Fatalf("drill without redis-server:\n%s", res)
	}
	if s := string(res.stdout); !strings.Contains(s, "skip redis:127.0.0.1:6379") || !strings.Contains(s, "redis-server not found") ||
		!strings.Contains(s, "0 passed, 0 failed, 1 skipped") {
		t.Fatalf("drill without redis-server:\n%s", s)
	}

	// A redis-server that cannot load the file fails the drill with its
	// log, and leaves nothing behind.
	fake := t.TempDir()
	writeFile(t, filepath.Join(fake, "redis-server"), []byte("#!/bin/sh\necho '# Short read or OOM loading DB. Unrecoverable error, aborting now.'\nexit 1\n"))
	if err := os.Chmod(filepath.Join(fake, "redis-server"), 0o755); err != nil {
		t.Fatal(err)
	}
	res = r.runEnv([]string{"PATH=" + fake + ":" + filepath.Dir(serverBin), "TMPDIR=" + tmp}, "check", "--restore-test")
	res.wantFail(t, exitFailure, "restore drill failed")
	if s := string(res.stdout); !strings.Contains(s, "FAIL redis:127.0.0.1:6379") || !strings.Contains(s, "Unrecoverable error") {
		t.Fatalf("drill with a failing redis-server:\n%s", s)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the failed drill left %d entries in TMPDIR: %v", len(left), left)
	}
}

// TestCompareKeyspace checks the tolerance of the Redis drill: a database
// may lose at most its expiring keys.
func TestCompareKeyspace(t *testing.T) {
	ks := &engines.Keyspace{Keys: 110, Expires: 10, DBs: []engines.KeyspaceDB{{DB: 0, Keys: 100, Expires: 10}, {DB: 3, Keys: 10}}}
	for _, c := range []struct {
		name     string
		restored []engines.Table
		problems int
	}{
		{"exact", []engines.Table{{Name: "db0", Rows: 100}, {Name: "db3", Rows: 10}}, 0},
		{"expired", []engines.Table{{Name: "db0", Rows: 90}, {Name: "db3", Rows: 10}}, 0},
		{"too few", []engines.Table{{Name: "db0", Rows: 89}, {Name: "db3", Rows: 10}}, 1},
		{"too many", []engines.Table{{Name: "db0", Rows: 101}, {Name: "db3", Rows: 10}}, 1},
		{"no expiry, one lost", []engines.Table{{Name: "db0", Rows: 100}, {Name: "db3", Rows: 9}}, 1},
		{"missing database", []engines.Table{{Name: "db0", Rows: 100}}, 1},
		{"extra database", []engines.Table{{Name: "db0", Rows: 100}, {Name: "db3", Rows: 10}, {Name: "db5", Rows: 1}}, 1},
	} {
		_, keys, problems := compareKeyspace(ks, c.restored)
		if len(problems) != c.problems {
			t.Errorf("%s: problems %q, want %d", c.name, problems, c.problems)
		}
		var want int64
		for _, tb := range c.restored {
			want += tb.Rows
		}
		if keys != want {
			t.Errorf("%s: %d keys checked, want %d", c.name, keys, want)
		}
	}
}
