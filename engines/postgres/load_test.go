package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pgQuery runs one query on db and returns its unaligned, tuples-only output.
func pgQuery(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql on %s: %v\n%s", db, err, out)
	}
	return strings.TrimSpace(string(out))
}

func pgCount(t testing.TB, db, sql string) int64 {
	t.Helper()
	s := pgQuery(t, db, sql)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: not a number: %q", sql, s)
	}
	return n
}

const (
	loadAccounts = 1000
	loadInitial  = 1000 // balance of every account at the start
)

// loadWriter is one psql session fed transfer transactions through stdin
// until stop is called.
type loadWriter struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  bytes.Buffer
	quit    chan struct{}
	done    chan error
	stopped bool
}

func startLoadWriter(t testing.TB, db string) *loadWriter {
	t.Helper()
	w := &loadWriter{quit: make(chan struct{}), done: make(chan error, 1)}
	w.cmd = exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", db)
	w.cmd.Stdout = io.Discard
	w.cmd.Stderr = &w.stderr
	var err error
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Commits need not wait for the WAL flush: more transactions per second.
		_, err := io.WriteString(w.stdin, "SET synchronous_commit = off;\n")
		for err == nil {
			select {
			case <-w.quit:
				w.done <- nil
				return
			default:
			}
			from := 1 + rand.IntN(loadAccounts)
			to := 1 + rand.IntN(loadAccounts-1)
			if to >= from {
				to++
			}
			amount := 1 + rand.IntN(100)
			_, err = fmt.Fprintf(w.stdin, "BEGIN; UPDATE accounts SET balance = balance - %[3]d WHERE id = %[1]d; "+
				"UPDATE accounts SET balance = balance + %[3]d WHERE id = %[2]d; "+
				"INSERT INTO transfers (src, dst, amount) VALUES (%[1]d, %[2]d, %[3]d); COMMIT;\n", from, to, amount)
		}
		w.done <- err
	}()
	return w
}

// stop ends the loop, lets psql run what it was sent, and reports errors.
// It may be called more than once.
func (w *loadWriter) stop(t testing.TB) {
	t.Helper()
	if w.stopped {
		return
	}
	w.stopped = true
	close(w.quit)
	feedErr := <-w.done
	_ = w.stdin.Close()
	waitErr := w.cmd.Wait()
	if feedErr != nil || waitErr != nil {
		t.Errorf("writer: feed %v, psql %v\n%s", feedErr, waitErr, w.stderr.String())
	}
}

// TestConsistencyUnderLoad dumps a database while a writer moves money
// between accounts, logging each transfer, and checks that the restored copy
// is one transactionally consistent state: the total is unchanged and every
// balance matches the restored transfer log.
func TestConsistencyUnderLoad(t *testing.T) {
	requirePG(t)
	start := time.Now()
	src := tempDB(t, "bk_test_load_src")
	dst := tempDB(t, "bk_test_load_dst")
	psqlExec(t, "postgres", fmt.Sprintf("CREATE DATABASE %s;", src))
	// "filler" sorts between "accounts" and "transfers", so pg_dump reads
	// the two related tables far apart in time.
	psqlExec(t, src, fmt.Sprintf(`
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO accounts SELECT g, %[2]d FROM generate_series(1, %[1]d) g;
CREATE TABLE transfers (id bigserial PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL);
CREATE TABLE filler (id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO filler SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 150000) g;
ANALYZE;
`, loadAccounts, loadInitial))
	const total = loadAccounts * loadInitial
	t.Logf("setup: %v", time.Since(start).Round(time.Millisecond))

	w := startLoadWriter(t, src)
	defer w.stop(t)
	// Wait until the writer is committing before the dump starts.
	deadline := time.Now().Add(10 * time.Second)
	for pgCount(t, src, "SELECT count(*) FROM transfers") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer committed nothing in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctx := context.Background()
	var dump bytes.Buffer
	before := pgCount(t, src, "SELECT count(*) FROM transfers")
	dumpStart := time.Now()
	if _, err := newEngine(t, "postgres://postgres@127.0.0.1/"+src, Options{}).Dump(ctx, &dump); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	dumpTime := time.Since(dumpStart)
	after := pgCount(t, src, "SELECT count(*) FROM transfers")
	w.stop(t)
	final := pgCount(t, src, "SELECT count(*) FROM transfers")
	t.Logf("dump: %d bytes in %v; %d transactions committed during it (%d before, %d in all)",
		dump.Len(), dumpTime.Round(time.Millisecond), after-before, before, final)
	if after-before <= 0 {
		t.Fatalf("no transaction committed while the dump ran (%v): make the filler bigger", dumpTime)
	}
	if got := pgCount(t, src, "SELECT sum(balance) FROM accounts"); got != total {
		t.Fatalf("source total is %d, want %d: the writer itself is broken", got, total)
	}

	if err := newEngine(t, "postgres://postgres@127.0.0.1/"+dst, Options{}).Restore(ctx, bytes.NewReader(dump.Bytes()), false); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := pgCount(t, dst, "SELECT sum(balance) FROM accounts"); got != total {
		t.Errorf("restored total is %d, want %d", got, total)
	}
	if got := pgCount(t, dst, "SELECT count(*) FROM accounts"); got != loadAccounts {
		t.Errorf("restored %d accounts, want %d", got, loadAccounts)
	}
	n := pgCount(t, dst, "SELECT count(*) FROM transfers")
	if n < before || n > after {
		t.Errorf("restored %d transfers, want between %d (at dump start) and %d (at dump end)", n, before, after)
	}
	// One writer session commits transfers in id order, so a snapshot holds
	// a prefix of them.
	if maxID := pgCount(t, dst, "SELECT coalesce(max(id), 0) FROM transfers"); maxID != n {
		t.Errorf("restored transfers are not a prefix: %d rows, max id %d", n, maxID)
	}
	bad := pgQuery(t, dst, fmt.Sprintf(`
SELECT a.id || ': ' || a.balance || ' != ' || (%[1]d + coalesce(i.s, 0) - coalesce(o.s, 0))
FROM accounts a
LEFT JOIN (SELECT dst, sum(amount) s FROM transfers GROUP BY dst) i ON i.dst = a.id
LEFT JOIN (SELECT src, sum(amount) s FROM transfers GROUP BY src) o ON o.src = a.id
WHERE a.balance != %[1]d + coalesce(i.s, 0) - coalesce(o.s, 0)
ORDER BY a.id LIMIT 10`, loadInitial))
	if bad != "" {
		t.Errorf("balances that do not match the restored transfer log (id: balance != expected):\n%s", bad)
	}
	if got, want := pgCount(t, dst, "SELECT count(*) FROM filler"), int64(150000); got != want {
		t.Errorf("restored %d filler rows, want %d", got, want)
	}
	t.Logf("restored %d transfers; total %v", n, time.Since(start).Round(time.Millisecond))
}
