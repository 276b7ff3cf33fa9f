package redis

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/internal/testenv"
)

const testAddr = "127.0.0.1:6379"

// testDB is the logical database the tests own; they flush it.
const testDB = "9"

func TestNew(t *testing.T) {
	e, err := New("redis://backup@db.example:6380", Options{Env: []string{"REDISCLI_AUTH=s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Source(); got != "redis://backup@db.example:6380" {
		t.Errorf("Source = %q", got)
	}
	if e.password != "s3cret" || e.user != "backup" {
		t.Errorf("user %q password set %v", e.user, e.password != "")
	}
	e, err = New("redis://127.0.0.1", Options{Env: []string{}})
	if err != nil || e.Source() != "redis://127.0.0.1:6379" || e.password != "" {
		t.Fatalf("New = %+v, %v", e, err)
	}
	for _, tc := range []struct{ url, want string }{
		{"redis://u:hunter2@host", "holds a password"},
		{"redis://:hunter2@host", "holds a password"},
		{"rediss://host", "not redis://"},
		{"redis://host/0", "no database"},
		{"redis://host?db=1", "no query"},
		{"redis://host:0", "bad port"},
		{"redis:///", "no host"},
	} {
		_, err := New(tc.url, Options{Env: []string{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q) error leaks the password: %v", tc.url, err)
		}
	}
	if _, err := New("redis://host", Options{Env: []string{"REDISCLI_AUTH="}}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty REDISCLI_AUTH: %v", err)
	}
	if _, err := New("redis://backup@host", Options{Env: []string{}}); err == nil {
		t.Error("a user without a password was accepted")
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "pw")
	if err := os.WriteFile(pf, []byte("from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pf, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New("redis://host", Options{PasswordFile: pf, Env: []string{}})
	if err == nil || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("0644 password file: %v", err)
	}
	if err := os.Chmod(pf, 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := New("redis://host", Options{PasswordFile: pf, Env: []string{"REDISCLI_AUTH=from-env"}})
	if err != nil || e.password != "from-file" {
		t.Fatalf("password file must win over REDISCLI_AUTH: %v", err)
	}
	if err := os.WriteFile(pf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New("redis://host", Options{PasswordFile: pf, Env: []string{}}); err == nil {
		t.Fatal("empty password file accepted")
	}
}

// freePort returns a TCP port that nothing listens on (now).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

func TestDumpServerDown(t *testing.T) {
	e, err := New(fmt.Sprintf("redis://127.0.0.1:%d", freePort(t)), Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var out bytes.Buffer
	m, err := e.Dump(context.Background(), &out)
	if err == nil || m != nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Dump = %v, %v; want a connect error", m, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v to fail", d)
	}
	t.Logf("server down: %v", err)
}

// client is a test connection that can read any RESP reply.
type client struct{ *conn }

func dialClient(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &client{newConn(nc, 30*time.Second)}
}

// value reads one reply of any type: string, int64-as-string, []any, nil.
func (c *client) value() (any, error) {
	s, err := c.line()
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(s, "*"):
		n, err := strconv.Atoi(s[1:])
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.value(); err != nil {
				return nil, err
			}
		}
		return out, nil
	case strings.HasPrefix(s, "$"):
		n, err := strconv.Atoi(s[1:])
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := ioReadFull(c, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case strings.HasPrefix(s, "-"):
		return nil, serverError(s[1:])
	case strings.HasPrefix(s, "+"), strings.HasPrefix(s, ":"):
		return s[1:], nil
	}
	return nil, fmt.Errorf("unexpected %q", s)
}

func ioReadFull(c *client, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// cmd runs one command, failing the test on any error.
func (c *client) cmd(t testing.TB, args ...string) any {
	t.Helper()
	if err := c.send(args...); err != nil {
		t.Fatal(err)
	}
	v, err := c.value()
	if err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	return v
}

// pipeline sends all commands, then reads all replies.
func (c *client) pipeline(t testing.TB, cmds [][]string) {
	t.Helper()
	var b strings.Builder
	for _, args := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	go func() { _, _ = c.nc.Write([]byte(b.String())) }()
	for range cmds {
		if _, err := c.value(); err != nil {
			t.Fatalf("pipeline: %v", err)
		}
	}
}

// fill puts about 3000 keys of every type into the selected database.
func fill(t testing.TB, c *client) {
	t.Helper()
	var cmds [][]string
	for i := range 2000 {
		cmds = append(cmds, []string{"SET", fmt.Sprintf("str:%d", i), fmt.Sprintf("value %d", i)})
	}
	for i := range 100 {
		cmds = append(cmds, []string{"SET", fmt.Sprintf("bin:%d", i), string([]byte{0, 0xff, byte(i), '\r', '\n', 0x80})})
	}
	for i := range 300 {
		k := fmt.Sprintf("hash:%d", i)
		cmds = append(cmds, []string{"HSET", k, "a", strconv.Itoa(i), "b", "\x00bin", "c", "ünïcode"})
		cmds = append(cmds, []string{"RPUSH", fmt.Sprintf("list:%d", i), "x", "y", strconv.Itoa(i), "z"})
		cmds = append(cmds, []string{"SADD", fmt.Sprintf("set:%d", i), "m1", "m2", strconv.Itoa(i)})
		cmds = append(cmds, []string{"ZADD", fmt.Sprintf("zset:%d", i), "1.5", "one", strconv.Itoa(i), "two", "-3", "three"})
	}
	big := []string{"HSET", "bighash"}
	bigset := []string{"SADD", "bigset"}
	bigz := []string{"ZADD", "bigzset"}
	for i := range 1000 {
		big = append(big, fmt.Sprintf("field%d", i), strings.Repeat("v", i%100))
		bigset = append(bigset, fmt.Sprintf("member%d", i))
		bigz = append(bigz, strconv.Itoa(i*7), fmt.Sprintf("m%d", i))
	}
	cmds = append(cmds, big, bigset, bigz,
		[]string{"SADD", "intset", "1", "2", "3", "100000"},
		[]string{"SET", "ttl", "expiring", "EX", "3600"},
		[]string{"SET", "large", strings.Repeat("0123456789abcdef", 1<<16)},
	)
	c.pipeline(t, cmds)
}

// sampleKeys are compared between the source and the restored server.
var sampleKeys = []string{"str:0", "str:1999", "bin:7", "hash:5", "list:9", "set:11", "zset:13",
	"bighash", "bigset", "bigzset", "intset", "ttl", "large"}

// snapshotOf reads the sample keys in a form that ignores set and hash order.
func snapshotOf(t testing.TB, c *client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range sampleKeys {
		typ := c.cmd(t, "TYPE", k).(string)
		var v any
		switch typ {
		case "string":
			v = c.cmd(t, "GET", k)
		case "hash":
			v = sortedPairs(c.cmd(t, "HGETALL", k).([]any))
		case "list":
			v = c.cmd(t, "LRANGE", k, "0", "-1")
		case "set":
			v = sorted(c.cmd(t, "SMEMBERS", k).([]any))
		case "zset":
			v = c.cmd(t, "ZRANGE", k, "0", "-1", "WITHSCORES")
		default:
			t.Fatalf("key %s has type %s", k, typ)
		}
		out[k] = typ + " " + fmt.Sprintf("%q", v)
	}
	ttl, _ := strconv.Atoi(c.cmd(t, "TTL", "ttl").(string))
	if ttl <= 0 || ttl > 3600 {
		t.Fatalf("TTL of ttl = %d", ttl)
	}
	return out
}

func sorted(v []any) []string {
	s := make([]string, len(v))
	for i := range v {
		s[i] = v[i].(string)
	}
	sort.Strings(s)
	return s
}

func sortedPairs(v []any) []string {
	s := make([]string, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		s = append(s, v[i].(string)+"="+v[i+1].(string))
	}
	sort.Strings(s)
	return s
}

func TestDumpRoundTrip(t *testing.T) {
	testenv.Require(t, "Redis", testAddr)
	c := dialClient(t, testAddr)
	c.cmd(t, "SELECT", testDB)
	if n := c.cmd(t, "DBSIZE").(string); n != "0" {
		t.Fatalf("logical database %s holds %s keys; the test needs it empty", testDB, n)
	}
	t.Cleanup(func() { c.cmd(t, "FLUSHDB") })
	fill(t, c)
	wantKeys := c.cmd(t, "DBSIZE").(string)
	want := snapshotOf(t, c)

	e, err := New("redis://"+testAddr, Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m, err := e.Dump(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(f.Name())
	t.Logf("dump: %d bytes in %v, manifest %+v", fi.Size(), time.Since(start), m)
	if m.Engine != "redis" || m.ServerVersion == "" || m.ToolVersion == "" || len(m.Warnings) != 0 {
		t.Errorf("manifest = %+v", m)
	}
	var got int64 = -1
	for _, tb := range m.Tables {
		if tb.Name == "db"+testDB {
			got = tb.Rows
		}
	}
	if strconv.FormatInt(got, 10) != wantKeys {
		t.Errorf("manifest has %d keys in db%s, want %s", got, testDB, wantKeys)
	}
	// The exact counts from the RDB: every key of fill, one with a TTL.
	if ks := keyspaceDB(t, m.Keyspace, testDB); strconv.FormatInt(ks.Keys, 10) != wantKeys || ks.Expires != 1 {
		t.Errorf("manifest keyspace for db%s = %+v, want %s keys, 1 expiring", testDB, ks, wantKeys)
	}

	// The file loads in a real redis-server and holds the same data.
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH; the dump was validated but not loaded")
	}
	addr := startServer(t, dir, "--rdbchecksum", "no", "--repl-diskless-sync", "no")
	rc := dialClient(t, addr)
	rc.cmd(t, "SELECT", testDB)
	if n := rc.cmd(t, "DBSIZE").(string); n != wantKeys {
		t.Fatalf("restored server has %s keys in db%s, want %s", n, testDB, wantKeys)
	}
	gotVals := snapshotOf(t, rc)
	for _, k := range sampleKeys {
		if gotVals[k] != want[k] {
			t.Errorf("key %s: restored %.200s, want %.200s", k, gotVals[k], want[k])
		}
	}

	// The throwaway server sends the plain "$<len>" form (disk-based sync)
	// and writes no checksum: the dump is accepted with a warning.
	e2, err := New("redis://"+addr, Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m2, err := e2.Dump(context.Background(), &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Warnings) != 1 || !strings.Contains(m2.Warnings[0], "checksum") {
		t.Errorf("no-checksum dump: warnings %q", m2.Warnings)
	}
	t.Logf("plain-form dump: %d bytes, warnings %q", out.Len(), m2.Warnings)
	if ks := keyspaceDB(t, m2.Keyspace, testDB); strconv.FormatInt(ks.Keys, 10) != wantKeys || ks.Expires != 1 {
		t.Errorf("plain-form keyspace for db%s = %+v, want %s keys, 1 expiring", testDB, ks, wantKeys)
	}
	if Keys(m2) != m2.Keyspace.Keys {
		t.Errorf("Keys = %d, want the keyspace's %d", Keys(m2), m2.Keyspace.Keys)
	}
	// Prove that this server really answers with the "$<len>" form.
	pc := dialClient(t, addr)
	pc.cmd(t, "REPLCONF", "rdb-only", "1")
	pc.cmd(t, "REPLCONF", "capa", "eof")
	if err := pc.send("PSYNC", "?", "-1"); err != nil {
		t.Fatal(err)
	}
	size, mark, err := pc.syncHeader()
	if err != nil || mark != nil || size != int64(out.Len()) {
		t.Fatalf("plain form: size %d mark %q err %v", size, mark, err)
	}
}

// keyspaceDB returns the manifest's counts of database db, failing the
// test when the manifest has no exact counts.
func keyspaceDB(t testing.TB, ks *engines.Keyspace, db string) engines.KeyspaceDB {
	t.Helper()
	if ks == nil {
		t.Fatal("the manifest has no keyspace counts")
	}
	var sum, exp int64
	var out engines.KeyspaceDB
	for _, d := range ks.DBs {
		sum += d.Keys
		exp += d.Expires
		if strconv.Itoa(d.DB) == db {
			out = d
		}
	}
	if sum != ks.Keys || exp != ks.Expires {
		t.Errorf("keyspace totals %d/%d, the databases sum to %d/%d", ks.Keys, ks.Expires, sum, exp)
	}
	return out
}

// startServer runs a throwaway redis-server loading dir/dump.rdb and
// returns its address once it answers PING.
func startServer(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	port := freePort(t)
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no"}, extra...)
	cmd := exec.Command("redis-server", args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c := &client{newConn(nc, 5*time.Second)}
			_ = c.send("PING")
			v, err := c.value()
			_ = nc.Close()
			if err == nil && v == "PONG" {
				return addr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis-server on %s did not come up:\n%s", addr, logs.String())
	return ""
}

func TestDumpWrongPassword(t *testing.T) {
	testenv.Require(t, "Redis", testAddr)
	// The default user has no password here: AUTH with one is refused.
	e, err := New("redis://"+testAddr, Options{Env: []string{"REDISCLI_AUTH=wrong-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Dump(context.Background(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "authenticate") {
		t.Fatalf("Dump = %v, want an authentication error", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
	t.Logf("wrong password: %v", err)
}
