package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/internal/testenv"
)

// newBytes splits b with p and returns the bytes of chunks not in seen,
// adding them to seen.
func newBytes(t testing.TB, b []byte, p chunk.Params, seen map[[32]byte]bool) int {
	t.Helper()
	s := chunk.NewSplitter(bytes.NewReader(b), p)
	var buf []byte
	n := 0
	for {
		c, err := s.Next(buf)
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		id := sha256.Sum256(c)
		if !seen[id] {
			seen[id] = true
			n += len(c)
		}
		buf = c
	}
}

// TestMeasureFormat compares how much a night's change of 1% of rows costs
// when the stream is the database file (VACUUM INTO) or .dump SQL. Run with
// BK_SQLITE_MEASURE=1 -v.
func TestMeasureFormat(t *testing.T) {
	if os.Getenv("BK_SQLITE_MEASURE") != "1" {
		t.Skip("set BK_SQLITE_MEASURE=1 to measure")
	}
	testenv.RequireCommand(t, "sqlite3")
	db := filepath.Join(t.TempDir(), "m.db")
	sq(t, db, `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score INTEGER, bio TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000)
INSERT INTO users SELECT x, 'user' || x, 'u' || x || '@example.com', abs(random() % 1000), hex(randomblob(80)) FROM c;
CREATE INDEX users_email ON users(email);`)
	p, err := chunk.NewParams()
	if err != nil {
		t.Fatal(err)
	}
	dumps := func() (file, sql []byte) {
		var b bytes.Buffer
		if _, err := newEngine(t, db).Dump(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sqlite3", db, ".dump").Output()
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), out
	}
	f1, s1 := dumps()
	// 1% of rows, spread at random: new scores and a new bio.
	sq(t, db, `UPDATE users SET score = score + 1, bio = hex(randomblob(80)) WHERE id IN (SELECT id FROM users ORDER BY random() LIMIT 1000);`)
	f2, s2 := dumps()
	for _, c := range []struct {
		name string
		a, b []byte
	}{{"file", f1, f2}, {"sql", s1, s2}} {
		seen := map[[32]byte]bool{}
		first := newBytes(t, c.a, p, seen)
		second := newBytes(t, c.b, p, seen)
		t.Logf("%-4s first %d bytes, second night adds %d bytes (%.1f%%)", c.name, first, second, 100*float64(second)/float64(len(c.b)))
	}
	// Clustered change: 1% of rows, consecutive ids.
	sq(t, db, `UPDATE users SET score = score + 1 WHERE id BETWEEN 5000 AND 5999;`)
	f3, s3 := dumps()
	for _, c := range []struct {
		name string
		a, b []byte
	}{{"file", f2, f3}, {"sql", s2, s3}} {
		seen := map[[32]byte]bool{}
		newBytes(t, c.a, p, seen)
		t.Logf("%-4s clustered 1%% change adds %d bytes", c.name, newBytes(t, c.b, p, seen))
	}
}
