package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bk-backup/bk/internal/testenv"
	"github.com/bk-backup/bk/store/s3"
)

// Region is the region of the servers Start runs.
const Region = "us-east-1"

// startTimeout bounds how long Start waits for the server to answer.
const startTimeout = 20 * time.Second

// Server is a running S3 server with one root user.
type Server struct {
	Endpoint  string // 127.0.0.1:PORT, plain http
	AccessKey string
	SecretKey string
}

// Start starts versitygw on a free 127.0.0.1 port, serving a fresh
// temporary folder with random root credentials, waits until it answers and
// stops it when the test ends. It is run as
//
//	versitygw --access KEY --secret SECRET --region us-east-1 --port 127.0.0.1:PORT --quiet posix DIR
func Start(t testing.TB) Server {
	t.Helper()
	bin := command(t)
	dir := t.TempDir()
	srv := Server{AccessKey: "AK" + randomHex(t, 9), SecretKey: randomHex(t, 20)}
	var lastErr error
	for range 3 { // the free port may be taken before versitygw binds it
		srv.Endpoint = freeAddr(t)
		stop, err := run(bin, dir, srv)
		if err == nil {
			t.Cleanup(stop)
			return srv
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return Server{}
}

// command returns the path of versitygw: on PATH, else in $GOPATH/bin,
// else it skips or fails the test through testenv.RequireCommand.
func command(t testing.TB) string {
	t.Helper()
	if path, err := exec.LookPath("versitygw"); err == nil {
		return path
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		path := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	return testenv.RequireCommand(t, "versitygw")
}

// run starts the server and waits until it answers. stop ends it.
func run(bin, dir string, srv Server) (stop func(), err error) {
	cmd := exec.Command(bin,
		"--access", srv.AccessKey, "--secret", srv.SecretKey,
		"--region", Region, "--port", srv.Endpoint, "--quiet",
		"posix", dir)
	cmd.Env = append(os.Environ(), "VGW_LOG_LEVEL=silent")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + srv.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("Server") != "" || resp.StatusCode == http.StatusForbidden {
				return stop, nil
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("versitygw exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("versitygw did not answer at %s within %v: %v; output: %s",
				srv.Endpoint, startTimeout, err, strings.TrimSpace(out.String()))
		}
	}
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// randomHex returns 2n random hex digits.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(buf)
}

// Config returns the configuration of bucket on srv, with static root
// credentials and a short retry deadline; the bucket need not exist.
func (srv Server) Config(bucket string) s3.Config {
	return s3.Config{
		Endpoint:      srv.Endpoint,
		Bucket:        bucket,
		Region:        Region,
		Lookup:        s3.LookupPath,
		Credentials:   credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		RetryDeadline: 10 * time.Second,
	}
}

// NewBucket creates a bucket with a random name on srv and returns its
// configuration (see Server.Config). The bucket is left behind; the server's
// folder goes when the test ends.
func NewBucket(t testing.TB, srv Server) s3.Config {
	t.Helper()
	cfg := srv.Config("bk-test-" + randomHex(t, 8))
	client, err := minio.New(srv.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region: Region,
	})
	if err != nil {
		t.Fatalf("s3 client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("make bucket %s: %v", cfg.Bucket, err)
	}
	return cfg
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child's
// stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // enough to tell what went wrong
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
