package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bk-backup/bk/store"
)

func TestClassify(t *testing.T) {
	urlErr := func(err error) error { return &url.Error{Op: "Put", URL: "http://h/b/k", Err: err} }
	opErr := func(errno syscall.Errno) error {
		return urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)})
	}
	resp := func(status int, code string) error {
		return minio.ErrorResponse{StatusCode: status, Code: code, Message: "msg"}
	}
	tests := []struct {
		err  error
		want kind
		hint string // a substring of the hint
	}{
		{resp(503, "SlowDown"), transient, ""},
		{resp(503, "503 Service Unavailable"), transient, ""},
		{resp(500, "InternalError"), transient, ""},
		{resp(429, "TooManyRequests"), transient, ""},
		{resp(400, "RequestTimeout"), transient, ""},
		{resp(400, "BadDigest"), transient, ""},
		{resp(503, "Throttling"), transient, ""},
		{resp(403, "AccessDenied"), permanent, "access denied"},
		{resp(403, "403 Forbidden"), permanent, "access denied"},
		{resp(403, "InvalidAccessKeyId"), permanent, "access key"},
		{resp(403, "SignatureDoesNotMatch"), permanent, "secret key"},
		{resp(400, "InvalidArgument"), permanent, ""},
		{resp(404, "NoSuchKey"), notFound, ""},
		{resp(404, "NoSuchBucket"), notFound, "bucket"},
		{resp(404, "404 Not Found"), notFound, ""},
		{fmt.Errorf("wrapped: %w", resp(503, "SlowDown")), transient, ""},
		{opErr(syscall.ECONNRESET), transient, ""},
		{opErr(syscall.ECONNREFUSED), transient, ""},
		{urlErr(io.EOF), transient, ""},
		{urlErr(io.ErrUnexpectedEOF), transient, ""},
		{urlErr(net.ErrClosed), transient, ""},
		{urlErr(&net.DNSError{Err: "no such host", Name: "h", IsNotFound: true}), permanent, "unknown host"},
		{urlErr(&net.DNSError{Err: "timeout", Name: "h", IsTimeout: true}), transient, ""},
		{urlErr(timeoutError{}), transient, ""},
		{urlErr(context.DeadlineExceeded), transient, ""},
		{errors.New("something odd"), permanent, ""},
		{finalError{io.ErrUnexpectedEOF}, final, ""},
	}
	for _, tt := range tests {
		v := classify(context.Background(), tt.err)
		if v.kind != tt.want || !strings.Contains(v.hint, tt.hint) {
			t.Errorf("classify(%#v) = %+v, want kind %d with hint containing %q", tt.err, v, tt.want, tt.hint)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v := classify(ctx, resp(503, "SlowDown")); v.kind != stopped {
		t.Errorf("classify with a canceled context = %+v, want stopped", v)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestScrub(t *testing.T) {
	var s scrubber
	s.add("AKIAEXAMPLE", "se/cr+et==", "", "tok")
	msg := "key AKIAEXAMPLE secret se/cr+et== escaped " + url.QueryEscape("se/cr+et==") + " path " + url.PathEscape("se/cr+et==") + " tok"
	got := s.scrub(msg)
	for _, secret := range []string{"AKIAEXAMPLE", "se/cr+et==", url.QueryEscape("se/cr+et=="), "tok"} {
		if strings.Contains(got, secret) {
			t.Errorf("scrub(%q) = %q, still shows %q", msg, got, secret)
		}
	}
	if !strings.HasPrefix(got, "key *** secret *** escaped ***") {
		t.Errorf("scrub(%q) = %q", msg, got)
	}
}

// TestErrorsScrubbed checks the last line of defence: a server error whose
// message holds the credentials reaches the caller without them, whatever
// the kind of error.
func TestErrorsScrubbed(t *testing.T) {
	b, err := newBackend(Config{
		Endpoint:    "127.0.0.1:1",
		Bucket:      "bucket",
		Credentials: credentials.NewStaticV4("AKIDSCRUBME", "SECRETSCRUBME", "TOKENSCRUBME"),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.policy.deadline = 0
	// A request, refused, makes the client fetch the credentials to sign it.
	if _, err := b.Stat(context.Background(), store.Handle{Type: store.ConfigFile}); err == nil {
		t.Fatal("stat at a closed port: no error")
	} else if strings.Contains(err.Error(), "SCRUBME") {
		t.Errorf("error %q shows credentials", err)
	}
	leaky := fmt.Errorf("server says: AKIDSCRUBME/SECRETSCRUBME/TOKENSCRUBME")
	errs := []error{
		minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied", Message: leaky.Error()},
		minio.ErrorResponse{StatusCode: 503, Code: "SlowDown", Message: leaky.Error()},
		leaky,
		finalError{leaky},
	}
	for _, e := range errs {
		err := b.retry(context.Background(), "get", "config", func(int) error { return e })
		if msg := err.Error(); strings.Contains(msg, "SCRUBME") {
			t.Errorf("error %q shows credentials", msg)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	b := &Backend{secrets: &scrubber{}, policy: retryPolicy{deadline: 20 * time.Millisecond, base: time.Millisecond, cap: time.Millisecond}}
	ctx := context.Background()
	n := 0
	err := b.retry(ctx, "put", "data/ab/abcd", func(int) error {
		n++
		return minio.ErrorResponse{StatusCode: 503, Code: "SlowDown", Message: "Please reduce your request rate."}
	})
	want := regexpMatch(t, err, `^s3 put data/ab/abcd: transient error, gave up after (\d+) attempts in \d+ms: 503 SlowDown: Please reduce your request rate\.$`)
	if want != fmt.Sprint(n) {
		t.Errorf("message says %s attempts, made %d", want, n)
	}

	n = 0
	err = b.retry(ctx, "get", "config", func(int) error {
		n++
		return minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied", Message: "Access Denied."}
	})
	regexpMatch(t, err, `^s3 get config: permanent error \(access denied: check the credentials and the bucket policy\): 403 AccessDenied: Access Denied\.$`)
	if n != 1 {
		t.Errorf("permanent error: %d attempts, want 1", n)
	}

	err = b.retry(ctx, "stat", "keys/k", func(int) error {
		return minio.ErrorResponse{StatusCode: 404, Code: "NoSuchKey"}
	})
	if !errors.Is(err, store.ErrNotFound) || err.Error() != "s3 stat keys/k: not found" {
		t.Errorf("not found: %v", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	err = b.retry(ctx, "stat", "keys/k", func(n int) error {
		if n == 2 {
			cancel()
		}
		return minio.ErrorResponse{StatusCode: 503, Code: "SlowDown"}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// regexpMatch checks err's message against pattern and returns the first
// submatch.
func regexpMatch(t *testing.T, err error, pattern string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one matching %s", pattern)
	}
	m := regexp.MustCompile(pattern).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q does not match %s", err, pattern)
	}
	if len(m) > 1 {
		return m[1]
	}
	return ""
}

func TestBackoff(t *testing.T) {
	p := retryPolicy{base: 100 * time.Millisecond, cap: 10 * time.Second}
	for n := 1; n < 100; n++ {
		limit := min(p.cap, p.base<<min(n-1, 30))
		for range 20 {
			if d := p.backoff(n); d < 0 || d >= limit {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, limit)
			}
		}
	}
}

func TestSizedReader(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		size    int64
		wantErr string
	}{
		{10, ""},
		{11, "yields 10 bytes, want 11"},
		{9, "more than 9 bytes"},
		{0, "more than 0 bytes"},
	}
	for _, tt := range tests {
		sr := &sizedReader{r: bytes.NewReader(data), size: tt.size}
		var err error
		if tt.size == 0 {
			err = sr.checkEnd(nil)
		} else {
			buf := make([]byte, tt.size)
			_, err = io.ReadFull(sr, buf) // drops an error that comes with the last bytes
		}
		if err == nil {
			err = sr.err
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("size %d: %v", tt.size, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("size %d: err = %v, want %q", tt.size, err, tt.wantErr)
		}
	}
}

// TestSizedReaderAt reads a sizedReaderAt the way minio-go does: Seek(0,
// io.SeekCurrent), then a SectionReader from there. Short and long readers
// fail as with Read.
func TestSizedReaderAt(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		start, size int64
		wantErr     string
	}{
		{0, 10, ""},
		{3, 7, ""},
		{0, 11, "yields 10 bytes, want 11"},
		{3, 8, "yields 7 bytes, want 8"},
		{0, 9, "more than 9 bytes"},
		{3, 6, "more than 6 bytes"},
	}
	for _, tt := range tests {
		rd := bytes.NewReader(data)
		if _, err := rd.Seek(tt.start, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		sra := &sizedReaderAt{sizedReader: &sizedReader{r: rd, size: tt.size}, ra: rd, base: tt.start}
		off, err := sra.Seek(0, io.SeekCurrent)
		if err != nil || off != tt.start {
			t.Fatalf("start %d: Seek = %d, %v", tt.start, off, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(sra, off, tt.size))
		if err == nil {
			err = sra.err
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("start %d size %d: %v", tt.start, tt.size, err)
		case tt.wantErr == "" && !bytes.Equal(got, data[tt.start:]):
			t.Errorf("start %d size %d: read %q", tt.start, tt.size, got)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("start %d size %d: err = %v, want %q", tt.start, tt.size, err, tt.wantErr)
		}
	}
}
