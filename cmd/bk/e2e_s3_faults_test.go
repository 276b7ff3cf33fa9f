package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/s3"
	"github.com/bk-backup/bk/store/s3test"
)

// s3Env is the environment of bk for repository loc on srv.
func s3Env(t *testing.T, srv s3test.Server, loc string, extra ...string) []string {
	return baseEnv(append([]string{"BK_REPO=" + loc, "BK_PASSWORD=" + testPassword,
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"BK_CACHE_DIR=" + t.TempDir()}, extra...)...)
}

// TestE2ES3BadInputs gives bk wrong keys, a missing bucket, a server that
// is down, an endpoint that is not S3 and a prefix with unrelated objects:
// each gets one clear error line, a non-zero exit, and nothing is written.
func TestE2ES3BadInputs(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	cfg := s3test.NewBucket(t, srv)
	loc := fmt.Sprintf("s3:http://%s/%s/repo", srv.Endpoint, cfg.Bucket)
	run := func(env []string, args ...string) result { return runBK(t, env, nil, args...) }

	// Wrong keys: permanent, fast, and the secret is not shown.
	env := s3Env(t, srv, loc, "AWS_SECRET_ACCESS_KEY=not-the-secret-123")
	res := run(env, "init")
	res.wantFail(t, exitFailure, "permanent", "secret key")
	if strings.Contains(res.String(), "not-the-secret-123") {
		t.Fatalf("the secret leaked:\n%s", res)
	}
	// An unknown access key fails too (versitygw v1.8.0 answers it with a
	// 404 rather than AWS's 403 InvalidAccessKeyId, so the wording varies).
	env = s3Env(t, srv, loc, "AWS_ACCESS_KEY_ID=AKNOTAKEY")
	run(env, "init").wantFail(t, exitFailure)

	// A missing bucket is "no repository".
	missing := fmt.Sprintf("s3:http://%s/bk-no-such-bucket/repo", srv.Endpoint)
	run(s3Env(t, srv, missing), "snapshots").wantFail(t, exitNoRepo, "does not exist")

	// A server that is down: transient, given up after --s3-timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	_ = ln.Close()
	start := time.Now()
	run(s3Env(t, srv, "s3:http://"+down+"/bucket/repo", "BK_S3_TIMEOUT=2s"), "snapshots").
		wantFail(t, exitFailure, "transient", "gave up", "connection refused")
	if time.Since(start) > 30*time.Second {
		t.Fatalf("a server that is down took %s to report", time.Since(start))
	}

	// An endpoint that is not S3.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><body>Not here</body></html>")
	}))
	t.Cleanup(web.Close)
	notS3 := "s3:http://" + strings.TrimPrefix(web.URL, "http://") + "/bucket/repo"
	for _, cmd := range []string{"init", "snapshots"} {
		run(s3Env(t, srv, notS3, "BK_S3_TIMEOUT=2s"), cmd).wantFail(t, exitFailure, "without S3 headers")
	}

	// A prefix that holds other objects is not initialised.
	other := cfg
	other.Prefix = "repo/notes"
	be, err := s3.Create(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(context.Background(), store.Handle{Type: store.KeyFile, Name: "unrelated"}, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	run(s3Env(t, srv, loc), "init").wantFail(t, exitFailure, "not a bk repository", "empty prefix")
	mine := cfg
	mine.Prefix = "repo"
	rb, err := s3.Open(context.Background(), mine)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Stat(context.Background(), store.Handle{Type: store.ConfigFile}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused init wrote a config: %v", err)
	}
}

// faultProxy is an HTTP proxy in front of an S3 server that answers some
// requests with 500 or 503, stalls others, resets connections in the middle
// of uploads and serves some downloads slowly.
type faultProxy struct {
	n    atomic.Int64
	next http.Handler
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1)
	switch {
	case n%11 == 0:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>`)
		return
	case n%13 == 0:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message><RequestId>fault</RequestId></Error>`)
		return
	case n%7 == 0 && r.Method == http.MethodPut && r.ContentLength > 4096:
		// Reset in the middle of an upload: read part of the body, then
		// drop the connection.
		_, _ = io.CopyN(io.Discard, r.Body, r.ContentLength/2)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = conn.Close()
				return
			}
		}
	case n%5 == 0:
		time.Sleep(300 * time.Millisecond) // a stall
	case n%3 == 0 && r.Method == http.MethodGet:
		w = &slowWriter{ResponseWriter: w}
	}
	p.next.ServeHTTP(w, r)
}

// slowWriter hands a response out in small pieces with pauses.
type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 64<<10)
		m, err := s.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
		time.Sleep(2 * time.Millisecond)
	}
	return n, nil
}

// TestE2ES3Faults runs snapshots through a proxy that injects 500 and 503
// answers, stalls, resets mid-upload and slow reads. Each snapshot either
// completes or fails with one clear line; afterwards the repository checks
// clean and every snapshot that reported success restores byte-identical.
func TestE2ES3Faults(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	target, err := url.Parse("http://" + srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(&faultProxy{next: httputil.NewSingleHostReverseProxy(target)})
	t.Cleanup(proxy.Close)
	bucket := "bk-faults"
	viaProxy := fmt.Sprintf("s3:http://%s/%s/repo", strings.TrimPrefix(proxy.URL, "http://"), bucket)
	direct := fmt.Sprintf("s3:http://%s/%s/repo", srv.Endpoint, bucket)
	faulty := &testRepo{t: t, path: viaProxy, env: s3Env(t, srv, viaProxy, "BK_S3_TIMEOUT=60s")}
	clean := &testRepo{t: t, path: direct, env: s3Env(t, srv, direct)}
	faulty.must(nil, "init")

	common := make([]byte, 3<<20)
	_, _ = rand.Read(common)
	saved := map[string][]byte{}
	for i := range 6 {
		own := make([]byte, 1<<20)
		_, _ = rand.Read(own)
		data := append(append(bytes.Clone(common[:i<<19]), own...), common[i<<19:]...)
		res := faulty.run(data, "snapshot", "--stdin", "--json", "--name", fmt.Sprintf("db%d", i%2))
		if res.code != 0 {
			if lines := strings.Count(strings.TrimSpace(string(res.stderr)), "\n"); lines > 0 || !strings.HasPrefix(string(res.stderr), "bk: ") {
				t.Fatalf("a failed snapshot must say why in one line:\n%s", res)
			}
			t.Logf("snapshot %d failed cleanly: %s", i, strings.TrimSpace(string(res.stderr)))
			continue
		}
		var s snapshotResult
		decodeJSON(t, res.stdout, &s)
		saved[s.ID] = data
	}
	if len(saved) == 0 {
		t.Fatal("no snapshot survived the faults: the retries do not work")
	}
	clean.must(nil, "check", "--read-data")
	for id, data := range saved {
		clean.wantRestore(id, data)
		faulty.wantRestore(id, data) // through the faults too
	}
}
