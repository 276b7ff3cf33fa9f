package mysql

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

// count runs a query on db that returns one number.
func count(t testing.TB, db, sql string) int64 {
	t.Helper()
	s := strings.TrimSpace(admin(t, "USE "+quoteIdent(db)+"; "+sql))
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

// loadWriter is one client session fed transfer transactions through stdin
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
	w.cmd = exec.Command("mariadb", "-h127.0.0.1", "-P3306", "-uroot", "--batch", db)
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
		var err error
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
			_, err = fmt.Fprintf(w.stdin, "START TRANSACTION; UPDATE accounts SET balance = balance - %[3]d WHERE id = %[1]d; "+
				"UPDATE accounts SET balance = balance + %[3]d WHERE id = %[2]d; "+
				"INSERT INTO transfers (src, dst, amount) VALUES (%[1]d, %[2]d, %[3]d); COMMIT;\n", from, to, amount)
		}
		w.done <- err
	}()
	return w
}

// stop ends the loop, lets the client run what it was sent, and reports
// errors. It may be called more than once.
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
		t.Errorf("writer: feed %v, client %v\n%s", feedErr, waitErr, w.stderr.String())
	}
}

// TestConsistencyUnderLoad dumps a database while a writer moves money
// between accounts, logging each transfer, and checks that the restored copy
// is one transactionally consistent state: the total is unchanged and every
// balance matches the restored transfer log.
func TestConsistencyUnderLoad(t *testing.T) {
	requireServer(t)
	start := time.Now()
	src := tempDB(t, true)
	dst := tempDB(t, false)
	// "filler" sorts between "accounts" and "transfers", so the dump reads
	// the two related tables far apart in time.
	admin(t, fmt.Sprintf("USE %[3]s;\n"+`
CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
INSERT INTO accounts SELECT seq, %[2]d FROM seq_1_to_%[1]d;
CREATE TABLE transfers (id BIGINT AUTO_INCREMENT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB;
CREATE TABLE filler (id INT PRIMARY KEY, pad VARCHAR(300) NOT NULL) ENGINE=InnoDB;
INSERT INTO filler SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_150000;
ANALYZE TABLE accounts, transfers, filler;
`, loadAccounts, loadInitial, quoteIdent(src)))
	const total = loadAccounts * loadInitial
	t.Logf("setup: %v", time.Since(start).Round(time.Millisecond))

	w := startLoadWriter(t, src)
	defer w.stop(t)
	// Wait until the writer is committing before the dump starts.
	deadline := time.Now().Add(10 * time.Second)
	for count(t, src, "SELECT COUNT(*) FROM transfers") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer committed nothing in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctx := context.Background()
	var dump bytes.Buffer
	before := count(t, src, "SELECT COUNT(*) FROM transfers")
	dumpStart := time.Now()
	if _, err := rootEngine(t, src).Dump(ctx, &dump); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	dumpTime := time.Since(dumpStart)
	after := count(t, src, "SELECT COUNT(*) FROM transfers")
	w.stop(t)
	final := count(t, src, "SELECT COUNT(*) FROM transfers")
	t.Logf("dump: %d bytes in %v; %d transactions committed during it (%d before, %d in all)",
		dump.Len(), dumpTime.Round(time.Millisecond), after-before, before, final)
	if after-before <= 0 {
		t.Fatalf("no transaction committed while the dump ran (%v): make the filler bigger", dumpTime)
	}
	if got := count(t, src, "SELECT SUM(balance) FROM accounts"); got != total {
		t.Fatalf("source total is %d, want %d: the writer itself is broken", got, total)
	}

	if err := rootEngine(t, dst).Restore(ctx, bytes.NewReader(dump.Bytes()), false); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := count(t, dst, "SELECT SUM(balance) FROM accounts"); got != total {
		t.Errorf("restored total is %d, want %d", got, total)
	}
	if got := count(t, dst, "SELECT COUNT(*) FROM accounts"); got != loadAccounts {
		t.Errorf("restored %d accounts, want %d", got, loadAccounts)
	}
	n := count(t, dst, "SELECT COUNT(*) FROM transfers")
	if n < before || n > after {
		t.Errorf("restored %d transfers, want between %d (at dump start) and %d (at dump end)", n, before, after)
	}
	// One writer session commits transfers in id order, so a snapshot holds
	// a prefix of them.
	if maxID := count(t, dst, "SELECT COALESCE(MAX(id), 0) FROM transfers"); maxID != n {
		t.Errorf("restored transfers are not a prefix: %d rows, max id %d", n, maxID)
	}
	bad := strings.TrimSpace(admin(t, fmt.Sprintf("USE %[2]s;\n"+`
SELECT CONCAT(a.id, ': ', a.balance, ' != ', %[1]d + COALESCE(i.s, 0) - COALESCE(o.s, 0))
FROM accounts a
LEFT JOIN (SELECT dst, SUM(amount) s FROM transfers GROUP BY dst) i ON i.dst = a.id
LEFT JOIN (SELECT src, SUM(amount) s FROM transfers GROUP BY src) o ON o.src = a.id
WHERE a.balance != %[1]d + COALESCE(i.s, 0) - COALESCE(o.s, 0)
ORDER BY a.id LIMIT 10;`, loadInitial, quoteIdent(dst))))
	if bad != "" {
		t.Errorf("balances that do not match the restored transfer log (id: balance != expected):\n%s", bad)
	}
	if got, want := count(t, dst, "SELECT COUNT(*) FROM filler"), int64(150000); got != want {
		t.Errorf("restored %d filler rows, want %d", got, want)
	}
	t.Logf("restored %d transfers; total %v", n, time.Since(start).Round(time.Millisecond))
}
