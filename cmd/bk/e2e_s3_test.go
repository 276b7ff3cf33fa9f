package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bk-backup/bk/internal/testenv"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/s3"
	"github.com/bk-backup/bk/store/s3test"
)

// newS3Repo initialises a repository on a fresh prefix of a new bucket of
// the test's S3 server (bk init creates the bucket).
func newS3Repo(t *testing.T, srv s3test.Server) *testRepo {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	loc := fmt.Sprintf("s3:http://%s/bk-e2e-%s/nightly", srv.Endpoint, hex.EncodeToString(b[:]))
	r := &testRepo{t: t, path: loc, env: baseEnv("BK_REPO="+loc, "BK_PASSWORD="+testPassword,
		"AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey,
		"BK_CACHE_DIR="+t.TempDir())}
	r.must(nil, "init")
	return r
}

// TestE2ES3 runs the life of a repository on a real S3 server: init, a
// snapshot of a real PostgreSQL database, a restore into a new database,
// check --read-data, forget and prune, concurrent snapshots from several
// processes, and the errors for a repeated init and a wrong secret.
func TestE2ES3(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "PostgreSQL", pgAddr)
	for _, prog := range []string{"pg_dump", "psql", "createdb", "dropdb"} {
		testenv.RequireCommand(t, prog)
	}
	srv := s3test.Start(t)
	r := newS3Repo(t, srv)

	src := createDB(t, "s3src")
	sql := func(q string) { pgRun(t, nil, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", src, "-c", q) }
	sql(`CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2));
		INSERT INTO t SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 20000) g;`)
	want := pgChecksum(t, src)
	url := "postgres://postgres@127.0.0.1:5432/" + src
	var first snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", url, "--json").stdout, &first)

	dst := fmt.Sprintf("bk_e2e_s3dst_%d", time.Now().UnixNano())
	t.Cleanup(func() { pgRun(t, nil, "dropdb", "--if-exists", "--force", dst) })
	r.must(nil, "restore", first.ID, "--to", "postgres://postgres@127.0.0.1:5432/"+dst)
	if got := pgChecksum(t, dst); got != want {
		t.Fatalf("restored from S3: checksum %q, want %q", got, want)
	}
	r.must(nil, "check", "--read-data")

	// Night two (1% of rows changed, 100 new), then forget the first
	// night and prune.
	sql(`UPDATE t SET name = name || '!' WHERE id % 100 = 0;
		INSERT INTO t SELECT g, md5(g::text), g * 1.5 FROM generate_series(20001, 20100) g;`)
	var second snapshotResult
	decodeJSON(t, r.must(nil, "snapshot", url, "--json").stdout, &second)
	// A 1.5 MB dump is only a few chunks, so how much the deltas save
	// varies with the repository's random chunker; night two must still
	// cost less than night one (make bench measures the real figures).
	if second.AddedBytes >= first.AddedBytes {
		t.Fatalf("night two added %d bytes, night one %d", second.AddedBytes, first.AddedBytes)
	}
	r.must(nil, "forget", "--keep-last", "1", "--prune")
	if list := r.snapshots(); len(list) != 1 || list[0].ID != second.ID {
		t.Fatalf("after forget: %v", list)
	}
	r.must(nil, "check", "--read-data")
	dump := r.restore("latest", "--name", second.Name)
	if int64(len(dump)) != second.Size {
		t.Fatalf("restored %d bytes, want %d", len(dump), second.Size)
	}

	// Several processes (hosts) snapshot into the repository at once.
	var wg sync.WaitGroup
	streams := make([][]byte, 4)
	ids := make([]string, 4)
	for i := range streams {
		streams[i] = bytes.Repeat([]byte(fmt.Sprintf("host %d row %%d\n", i)), 30000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := r.run(streams[i], "snapshot", "--stdin", "--json", "--name", "app", "--host", fmt.Sprintf("host%d", i))
			if res.code != 0 {
				t.Errorf("concurrent snapshot %d: %s", i, res)
				return
			}
			var s snapshotResult
			decodeJSON(t, res.stdout, &s)
			ids[i] = s.ID
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id != "" {
			r.wantRestore(id, streams[i])
		}
	}
	r.must(nil, "check")

	// Locks work across processes on S3: once a snapshot holds its shared
	// lock, prune fails at once and clearly (exit 11); then it runs.
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	slow := r.start(pr, "snapshot", "--stdin", "--name", "slow")
	if _, err := pw.Write(bytes.Repeat([]byte("slow dump line\n"), 1000)); err != nil {
		t.Fatal(err)
	}
	cfg, err := s3.ParseURL(r.path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")
	be, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		locks := 0
		if err := be.List(context.Background(), store.LockFile, func(store.FileInfo) error { locks++; return nil }); err != nil {
			t.Fatal(err)
		}
		if locks > 0 {
			break
		}
		if slow.exited() || time.Now().After(deadline) {
			t.Fatalf("the slow snapshot never held a lock: %s", slow.wait())
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.run(nil, "prune").wantFail(t, exitLocked, "locked")
	_ = pw.Close()
	if res := slow.wait(); res.code != 0 {
		t.Fatalf("the slow snapshot: %s", res)
	}
	r.must(nil, "prune")
	r.must(nil, "check", "--read-data")

	// The prefix holds a repository now; a wrong secret is a clear,
	// permanent error that does not show the secret.
	r.run(nil, "init").wantFail(t, exitFailure, "already")
	bad := r.runEnv([]string{"AWS_SECRET_ACCESS_KEY=wrong-secret-value"}, "snapshots")
	if bad.code == 0 || !strings.Contains(strings.ToLower(bad.errLine(t)), "permanent") ||
		strings.Contains(string(bad.stderr), "wrong-secret-value") || strings.Contains(string(bad.stderr), srv.SecretKey) {
		t.Fatalf("wrong secret:\n%s", bad)
	}
}
