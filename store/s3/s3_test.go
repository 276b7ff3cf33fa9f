package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/s3"
	"github.com/bk-backup/bk/store/s3test"
	"github.com/bk-backup/bk/store/storetest"
)

// open opens the backend for cfg with a fast backoff.
func open(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	b, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Bucket, err)
	}
	s3.SetBackoff(b, time.Millisecond, 50*time.Millisecond)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, err := s3.Open(t.Context(), s3test.NewBucket(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestConformancePrefix runs the suite on repositories under prefixes of one
// bucket, next to a neighbour repository and stray objects that no listing
// may show.
func TestConformancePrefix(t *testing.T) {
	srv := s3test.Start(t)
	cfg := s3test.NewBucket(t, srv)

	stray := open(t, cfg) // at the bucket root, outside every prefix
	neighbour := cfg
	neighbour.Prefix = "repos/repo"
	nb := open(t, neighbour)
	for _, typ := range store.AllTypes {
		h := store.Handle{Type: typ, Name: "abcdef"}
		if typ == store.ConfigFile {
			h.Name = ""
		}
		put(t, stray, h, "stray")
		put(t, nb, h, "neighbour")
	}

	n := 0
	storetest.Run(t, func(t *testing.T) store.Backend {
		n++
		c := cfg
		c.Prefix = fmt.Sprintf("repos/repo%d", n) // "repos/repo" + digits: a prefix of the neighbour's keys
		b, err := s3.Open(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func put(t testing.TB, b store.Backend, h store.Handle, data string) {
	t.Helper()
	if err := b.Put(t.Context(), h, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want s3.Config
	}{
		{"s3:http://localhost:9000/bucket", s3.Config{Endpoint: "localhost:9000", Bucket: "bucket"}},
		{"s3:https://s3.example.com/bucket/pre/fix", s3.Config{Endpoint: "s3.example.com", Secure: true, Bucket: "bucket", Prefix: "pre/fix"}},
		{"s3:https://s3.example.com/bucket/prefix/", s3.Config{Endpoint: "s3.example.com", Secure: true, Bucket: "bucket", Prefix: "prefix"}},
		{"s3:https://s3.example.com/bucket/", s3.Config{Endpoint: "s3.example.com", Secure: true, Bucket: "bucket"}},
		{"s3:s3.amazonaws.com/my-bucket/backups", s3.Config{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "my-bucket", Prefix: "backups"}},
		{"s3:127.0.0.1:7070/b12", s3.Config{Endpoint: "127.0.0.1:7070", Secure: true, Bucket: "b12"}},
		{"s3:http://[::1]:7070/bucket/p", s3.Config{Endpoint: "[::1]:7070", Bucket: "bucket", Prefix: "p"}},
	}
	for _, tt := range good {
		got, err := s3.ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
		}
	}

	bad := []struct {
		url, want string // want: a substring of the error
	}{
		{"http://localhost/bucket", `does not start with "s3:"`},
		{"s3:ftp://localhost/bucket", `scheme "ftp"`},
		{"s3:http://localhost", "no bucket"},
		{"s3:http://localhost/", "no bucket"},
		{"s3:localhost", "no bucket"},
		{"s3:http:///bucket", "no host"},
		{"s3:http://localhost:/bucket", "empty port"},
		{"s3:http://localhost/-bucket", "bucket"},
		{"s3:http://localhost/bad..dots", "bucket"},
		{"s3:http://localhost/ab", "bucket"},
		{"s3:http://localhost/bucket/a//b", "empty"},
		{"s3:http://localhost/bucket/a/../b", "segment"},
		{"s3:http://localhost/bucket?region=x", "query"},
		{"s3:http://localhost/bucket#x", "fragment"},
		{"s3:http://AKIDEXAMPLE:s3cr3tW0rd@localhost/bucket", "credentials in the URL"},
		{"s3:https://AKIDEXAMPLE:s3cr3t/W0rd@localhost/bucket", "credentials in the URL"},
		{"s3:AKIDEXAMPLE@localhost/bucket", "credentials in the URL"},
	}
	for _, tt := range bad {
		_, err := s3.ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q): no error", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURL(%q): error %q, want one containing %q", tt.url, err, tt.want)
		}
		for _, secret := range []string{"s3cr3t", "AKIDEXAMPLE", "W0rd"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseURL(%q): error %q shows the credentials", tt.url, err)
			}
		}
	}
}

func TestLocation(t *testing.T) {
	srv := s3test.Start(t)
	cfg := s3test.NewBucket(t, srv)
	cfg.Prefix = "a/b"
	b := open(t, cfg)
	want := "s3:http://" + srv.Endpoint + "/" + cfg.Bucket + "/a/b"
	if got := b.Location(); got != want {
		t.Fatalf("Location() = %q, want %q", got, want)
	}
	parsed, err := s3.ParseURL(b.Location())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Endpoint != cfg.Endpoint || parsed.Bucket != cfg.Bucket || parsed.Prefix != cfg.Prefix || parsed.Secure {
		t.Errorf("ParseURL(Location()) = %+v, want the location of %+v", parsed, cfg)
	}
	if strings.Contains(b.Location(), srv.AccessKey) || strings.Contains(b.Location(), srv.SecretKey) {
		t.Errorf("Location() %q shows credentials", b.Location())
	}
}

func TestOpenMissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	_, err := s3.Open(t.Context(), srv.Config("no-such-bucket"))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("open of a missing bucket: err = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("error %q does not name the bucket", err)
	}
}

func TestCreate(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	cfg := srv.Config("bk-create-test")
	cfg.Prefix = "repo"
	b, err := s3.Create(ctx, cfg)
	if err != nil {
		t.Fatalf("create with a missing bucket: %v", err)
	}
	if _, err := s3.Open(ctx, cfg); err != nil {
		t.Fatalf("open after create: %v", err)
	}
	// The bucket exists now, the repository not yet: Create is fine.
	if _, err := s3.Create(ctx, cfg); err != nil {
		t.Fatalf("create in an existing bucket: %v", err)
	}
	put(t, b, store.Handle{Type: store.ConfigFile}, "config")
	if _, err := s3.Create(ctx, cfg); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create over a repository: err = %v, want ErrExists", err)
	}
	// Another prefix in the same bucket is free.
	cfg.Prefix = "other"
	if _, err := s3.Create(ctx, cfg); err != nil {
		t.Fatalf("create next to a repository: %v", err)
	}
}

// TestListPaging lists more objects than one list request returns (1000).
func TestListPaging(t *testing.T) {
	srv := s3test.Start(t)
	b := open(t, s3test.NewBucket(t, srv))
	const indexes, packs = 1100, 300
	var g errgroup.Group
	g.SetLimit(32)
	for i := range indexes + packs {
		h := store.Handle{Type: store.IndexFile, Name: fmt.Sprintf("index%06d", i)}
		if i >= indexes {
			h = store.Handle{Type: store.PackFile, Name: fmt.Sprintf("%02x%06d", i%256, i)} // spread over data/ subfolders
		}
		g.Go(func() error { return b.Put(t.Context(), h, strings.NewReader("x"), 1) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	got := listNames(t, b, store.IndexFile)
	if len(got) != indexes {
		t.Errorf("list index: %d files, want %d", len(got), indexes)
	}
	for i := range indexes {
		if name := fmt.Sprintf("index%06d", i); !got[name] {
			t.Fatalf("list index: %s missing", name)
		}
	}
	if got := listNames(t, b, store.PackFile); len(got) != packs {
		t.Errorf("list data: %d files, want %d", len(got), packs)
	}
	s3.SetListPageSize(b, 97)
	if got := listNames(t, b, store.IndexFile); len(got) != indexes {
		t.Errorf("list index in pages of 97: %d files, want %d", len(got), indexes)
	}
}

// listNames lists the files of typ and fails on duplicates.
func listNames(t testing.TB, b store.Backend, typ store.FileType) map[string]bool {
	t.Helper()
	got := make(map[string]bool)
	err := b.List(t.Context(), typ, func(fi store.FileInfo) error {
		if got[fi.Name] {
			return fmt.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = true
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", typ, err)
	}
	return got
}

// TestMultipart puts a file of several parts and checks that it went up as
// a multipart upload with a checksum on every part: over plain http, as
// here, the SigV4 streaming signature (a signed SHA-256 per chunk) and no
// Content-MD5, which would only repeat it.
func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv, nil)
	b := open(t, p.config(s3test.NewBucket(t, srv)))
	s3.SetPartSize(b, 5<<20)

	data := randomBytes(11<<20 + 3)
	h := store.Handle{Type: store.PackFile, Name: "ab0123"}
	if err := b.Put(t.Context(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, r := range p.requests() {
		if r.method == http.MethodPut && r.query.Has("partNumber") {
			parts++
			if !strings.HasPrefix(r.sha256, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") || r.contentMD5 != "" {
				t.Errorf("part %s: X-Amz-Content-Sha256 %q, Content-MD5 %q; want a streaming signature and no MD5",
					r.query.Get("partNumber"), r.sha256, r.contentMD5)
			}
		}
	}
	if parts != 3 {
		t.Errorf("uploaded %d parts, want 3; requests: %v", parts, p.requests())
	}
	got, err := store.ReadAll(t.Context(), b, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after multipart put: %d bytes, err %v; want the %d put", len(got), err, len(data))
	}
	if fi, err := b.Stat(t.Context(), h); err != nil || fi.Size != int64(len(data)) {
		t.Errorf("stat: %+v, %v", fi, err)
	}

	// A failed multipart put leaves no object.
	h2 := store.Handle{Type: store.PackFile, Name: "ab4567"}
	if err := b.Put(t.Context(), h2, bytes.NewReader(data), int64(len(data)-1)); err == nil {
		t.Fatal("multipart put with a reader that yields too much: no error")
	}
	if _, err := b.Stat(t.Context(), h2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stat after failed multipart put: %v, want ErrNotFound", err)
	}
}

// TestContentMD5 corrupts the body of the first put on its way to the
// server. Over https the payload is not signed, so only Content-MD5 lets
// the server reject it (BadDigest); the backend retries. (Over plain http
// the payload is signed too, and the server answers SignatureDoesNotMatch.)
// The proxy serves https with its own certificate, trusted through CAFile.
func TestContentMD5(t *testing.T) {
	srv := s3test.Start(t)
	p := newTLSProxy(t, srv, func(n int, r *http.Request) fault {
		if r.Method == http.MethodPut && n == 1 {
			return corrupt
		}
		return pass
	})
	b := open(t, p.config(s3test.NewBucket(t, srv)))
	data := randomBytes(100 << 10)
	h := store.Handle{Type: store.IndexFile, Name: "abcd"}
	p.reset()
	if err := b.Put(t.Context(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	reqs := p.requests()
	if len(reqs) != 2 || reqs[0].status != http.StatusBadRequest || reqs[1].status != http.StatusOK {
		t.Errorf("requests %v, want a rejected corrupt put and a successful retry", reqs)
	}
	sum := md5.Sum(data)
	for _, r := range reqs {
		if want := base64.StdEncoding.EncodeToString(sum[:]); r.contentMD5 != want {
			t.Errorf("put with Content-MD5 %q, want %q", r.contentMD5, want)
		}
	}
	if got, err := store.ReadAll(t.Context(), b, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, err %v; want the %d put", len(got), err, len(data))
	}
}

// TestSignedPayload corrupts the body of a put over plain http, which
// carries no Content-MD5: the streaming signature makes the server reject
// it, so the corrupt bytes are never stored, and as the keys have worked
// the backend takes it for damage in transit and tries again.
func TestSignedPayload(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv, func(n int, r *http.Request) fault {
		if r.Method == http.MethodPut && n == 1 {
			return corrupt
		}
		return pass
	})
	b := open(t, p.config(s3test.NewBucket(t, srv)))
	data := randomBytes(100 << 10)
	h := store.Handle{Type: store.IndexFile, Name: "abcd"}
	p.reset()
	err := b.Put(t.Context(), h, bytes.NewReader(data), int64(len(data)))
	reqs := p.requests()
	if len(reqs) == 0 || reqs[0].status < 400 || reqs[0].contentMD5 != "" {
		t.Fatalf("requests %v, want the corrupt put rejected, without Content-MD5", reqs)
	}
	if err != nil || len(reqs) != 2 || reqs[1].status != http.StatusOK {
		t.Fatalf("put: %v; requests %v, want a rejected corrupt put and a successful retry", err, reqs)
	}
	if got, err := store.ReadAll(t.Context(), b, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, err %v; want the %d put", len(got), err, len(data))
	}
}

// TestUntrustedCertificate connects over https to a server whose
// certificate no CA vouches for: a permanent error that says so.
func TestUntrustedCertificate(t *testing.T) {
	srv := s3test.Start(t)
	p := newTLSProxy(t, srv, nil)
	cfg := p.config(s3test.NewBucket(t, srv))
	cfg.CAFile = ""
	_, err := s3.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "permanent error (TLS certificate not trusted") {
		t.Fatalf("open with an untrusted certificate: err = %v, want a permanent TLS error", err)
	}
	if len(p.requests()) != 0 {
		t.Errorf("requests reached the server: %v", p.requests())
	}
}

// TestRetryTransient makes the first requests of every operation fail in
// the ways S3 fails transiently; every operation must succeed after
// retries.
func TestRetryTransient(t *testing.T) {
	srv := s3test.Start(t)
	for _, f := range []fault{slowDown, internalError, resetConn, delay} {
		t.Run(f.String(), func(t *testing.T) {
			p := newProxy(t, srv, nil)
			cfg := p.config(s3test.NewBucket(t, srv))
			// A timeout well below the delay, so delays fail attempts.
			cfg.Transport = &http.Transport{ResponseHeaderTimeout: 200 * time.Millisecond}
			b := open(t, cfg)
			ctx := t.Context()
			data := randomBytes(3000)
			h := store.Handle{Type: store.PackFile, Name: "abcdef"}

			ops := []struct {
				name string
				run  func() error
			}{
				{"put", func() error { return b.Put(ctx, h, bytes.NewReader(data), int64(len(data))) }},
				{"get", func() error {
					got, err := store.ReadAt(ctx, b, h, 10, 100)
					if err == nil && !bytes.Equal(got, data[10:110]) {
						err = errors.New("wrong data")
					}
					return err
				}},
				{"stat", func() error { _, err := b.Stat(ctx, h); return err }},
				{"list", func() error {
					if got := listNames(t, b, store.PackFile); !got[h.Name] || len(got) != 1 {
						return fmt.Errorf("listed %v", got)
					}
					return nil
				}},
				{"delete", func() error { return b.Delete(ctx, h) }},
			}
			for _, op := range ops {
				const faults = 3
				p.reset()
				p.setFault(func(n int, r *http.Request) fault {
					if n <= faults {
						return f
					}
					return pass
				})
				start := time.Now()
				if err := op.run(); err != nil {
					t.Fatalf("%s after %d faults: %v", op.name, faults, err)
				}
				t.Logf("%s: %v, %v", op.name, time.Since(start), p.requests())
				if got := len(p.requests()); got <= faults {
					t.Errorf("%s: %d requests, want more than the %d that failed", op.name, got, faults)
				}
			}
			p.setFault(nil)
			if _, err := b.Stat(ctx, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("stat after delete: %v", err)
			}
		})
	}
}

// TestRetryListResumes fails list requests in the middle of a paged
// listing: the listing resumes and reports every file once.
func TestRetryListResumes(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv, nil)
	b := open(t, p.config(s3test.NewBucket(t, srv)))
	for i := range 50 {
		put(t, b, store.Handle{Type: store.SnapshotFile, Name: fmt.Sprintf("snap%03d", i)}, "x")
	}
	s3.SetListPageSize(b, 7)
	p.reset()
	p.setFault(func(n int, r *http.Request) fault {
		if n%3 == 2 {
			return slowDown
		}
		return pass
	})
	if got := listNames(t, b, store.SnapshotFile); len(got) != 50 {
		t.Errorf("listed %d files, want 50", len(got))
	}
	if failed := p.count(func(r request) bool { return r.status == http.StatusServiceUnavailable }); failed < 3 {
		t.Errorf("%d list requests failed, want several", failed)
	}
}

// TestRetryGivesUp fails every request transiently: the operation gives up
// once the retry deadline has passed, and says so.
func TestRetryGivesUp(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv, nil)
	cfg := p.config(s3test.NewBucket(t, srv))
	cfg.RetryDeadline = 500 * time.Millisecond
	b := open(t, cfg)
	p.reset()
	p.setFault(func(int, *http.Request) fault { return slowDown })

	start := time.Now()
	h := store.Handle{Type: store.PackFile, Name: "abcdef"}
	err := b.Put(t.Context(), h, strings.NewReader("data"), 4)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("put through a server that always answers 503: no error")
	}
	msg := err.Error()
	for _, want := range []string{"s3 put data/ab/abcdef", "transient error, gave up after", "503 SlowDown", "reduce your request rate"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if elapsed > cfg.RetryDeadline+time.Second {
		t.Errorf("gave up after %v, want about the retry deadline %v", elapsed, cfg.RetryDeadline)
	}
	if n := len(p.requests()); n < 3 {
		t.Errorf("%d attempts, want several", n)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Errorf("error %v matches ErrNotFound", err)
	}
}

// TestPermanentNotRetried answers 403 with the credentials in the message:
// the error is permanent, comes after one request, and shows no credential.
func TestPermanentNotRetried(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv, nil)
	b := open(t, p.config(s3test.NewBucket(t, srv)))
	p.reset()
	p.setFault(func(int, *http.Request) fault { return forbidden })

	ops := []struct {
		name string
		run  func() error
	}{
		{"get", func() error {
			_, err := store.ReadAll(t.Context(), b, store.Handle{Type: store.ConfigFile})
			return err
		}},
		{"stat", func() error { _, err := b.Stat(t.Context(), store.Handle{Type: store.KeyFile, Name: "k"}); return err }},
		{"put", func() error {
			return b.Put(t.Context(), store.Handle{Type: store.LockFile, Name: "l"}, strings.NewReader("x"), 1)
		}},
		{"list", func() error { return b.List(t.Context(), store.IndexFile, func(store.FileInfo) error { return nil }) }},
	}
	for _, op := range ops {
		p.reset()
		err := op.run()
		if err == nil {
			t.Fatalf("%s: no error", op.name)
		}
		if n := len(p.requests()); n != 1 {
			t.Errorf("%s: %d requests, want 1 (no retries)", op.name, n)
		}
		msg := err.Error()
		if !strings.Contains(msg, "permanent error (access denied: check the credentials and the bucket policy)") {
			t.Errorf("%s: error %q does not say it is permanent and why", op.name, msg)
		}
		for _, secret := range []string{srv.AccessKey, srv.SecretKey} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s: error %q shows a credential", op.name, msg)
			}
		}
	}
}

// TestWrongCredentials connects with a wrong secret key or a bogus
// session token: a permanent error, fast, that says what is wrong and does
// not show the credentials.
func TestWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	cfg := s3test.NewBucket(t, srv)
	wrong := "wrong-" + srv.SecretKey[:10] + "-secret"
	tests := []struct {
		name, secret, token, want string
	}{
		{"secret", wrong, "", "permanent error (signature mismatch: check the secret key)"},
		{"token", srv.SecretKey, "session-token-XYZ", "permanent error (invalid session token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg.Credentials = credentials.NewStaticV4(srv.AccessKey, tt.secret, tt.token)
			start := time.Now()
			_, err := s3.Open(t.Context(), cfg)
			if err == nil {
				t.Fatal("open: no error")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("open took %v; a permanent error must not be retried", d)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			for _, s := range []string{wrong, srv.SecretKey, srv.AccessKey, "session-token-XYZ"} {
				if strings.Contains(msg, s) {
					t.Errorf("error %q shows the credential %q", msg, s)
				}
			}
		})
	}
}

// TestContextCanceled stops the retries of an operation when its context
// ends.
func TestContextCanceled(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv, nil)
	b := open(t, p.config(s3test.NewBucket(t, srv)))
	p.setFault(func(int, *http.Request) fault { return slowDown })
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := b.Stat(ctx, store.Handle{Type: store.KeyFile, Name: "k"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stat with an expiring context: err = %v, want DeadlineExceeded", err)
	}
}

func randomBytes(n int) []byte {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8 + i>>16)
	}
	return buf
}

// fault is what the proxy does to one request.
type fault int

const (
	pass          fault = iota
	slowDown            // answer 503 SlowDown
	internalError       // answer 500 InternalError
	resetConn           // reset the connection
	delay               // wait 1s before passing the request on
	forbidden           // answer 403 AccessDenied, with the credentials in the message
	corrupt             // flip a bit of the request body
)

func (f fault) String() string {
	return [...]string{"pass", "SlowDown", "InternalError", "reset", "delay", "forbidden", "corrupt"}[f]
}

// request is a request the proxy saw.
type request struct {
	method     string
	query      url.Values
	contentMD5 string
	sha256     string // X-Amz-Content-Sha256
	status     int    // of the answer; 0 if the connection was reset
}

func (r request) String() string {
	return fmt.Sprintf("%s ?%s → %d", r.method, r.query.Encode(), r.status)
}

// proxy is a reverse proxy in front of an S3 server that injects faults.
type proxy struct {
	t      testing.TB
	srv    s3test.Server
	url    *url.URL
	caFile string // for https: the certificate to trust
	rp     *httputil.ReverseProxy

	mu    sync.Mutex
	fault func(n int, r *http.Request) fault // n counts from 1 since the last reset
	reqs  []request
}

func newProxy(t testing.TB, srv s3test.Server, fault func(n int, r *http.Request) fault) *proxy {
	p := &proxy{t: t, srv: srv, fault: fault}
	hs := httptest.NewServer(p.init())
	t.Cleanup(hs.Close)
	p.url, _ = url.Parse(hs.URL)
	return p
}

// newTLSProxy is newProxy serving https, with a certificate that config
// trusts through Config.CAFile.
func newTLSProxy(t testing.TB, srv s3test.Server, fault func(n int, r *http.Request) fault) *proxy {
	p := &proxy{t: t, srv: srv, fault: fault}
	hs := httptest.NewUnstartedServer(p.init())
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // no "TLS handshake error" noise
	hs.StartTLS()
	t.Cleanup(hs.Close)
	p.url, _ = url.Parse(hs.URL)
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(p.caFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// init sets up the reverse proxy to the server.
func (p *proxy) init() *proxy {
	target := &url.URL{Scheme: "http", Host: p.srv.Endpoint}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the request is signed for the proxy's host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return p
}

// config returns cfg reached through the proxy.
func (p *proxy) config(cfg s3.Config) s3.Config {
	cfg.Endpoint = p.url.Host
	if p.caFile != "" {
		cfg.Secure, cfg.CAFile = true, p.caFile
	}
	return cfg
}

func (p *proxy) setFault(f func(n int, r *http.Request) fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	p.reqs = nil
}

// reset forgets the requests seen so far.
func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

func (p *proxy) requests() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]request(nil), p.reqs...)
}

func (p *proxy) count(match func(request) bool) int {
	n := 0
	for _, r := range p.requests() {
		if match(r) {
			n++
		}
	}
	return n
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	i := len(p.reqs)
	p.reqs = append(p.reqs, request{method: r.Method, query: r.URL.Query(), contentMD5: r.Header.Get("Content-MD5"),
		sha256: r.Header.Get("X-Amz-Content-Sha256")})
	f := pass
	if p.fault != nil {
		f = p.fault(i+1, r)
	}
	p.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if i < len(p.reqs) { // not reset meanwhile
			p.reqs[i].status = rec.status
		}
	}()

	switch f {
	case slowDown:
		errorResponse(rec, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	case internalError:
		errorResponse(rec, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		return
	case forbidden:
		errorResponse(rec, http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("Access Denied for %s (secret %s)", p.srv.AccessKey, p.srv.SecretKey))
		return
	case resetConn:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			p.t.Errorf("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // send RST, not FIN
		}
		_ = conn.Close()
		return
	case delay:
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
	case corrupt:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if len(body) > 0 {
			body[len(body)/2] ^= 1
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.rp.ServeHTTP(rec, r)
}

func errorResponse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>`, code, msg)
}

// statusRecorder records the status of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
