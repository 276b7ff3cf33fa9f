package s3_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/s3test"
)

// TestCredentialChain opens a bucket with no credentials in the config, so
// the default chain supplies them: the AWS environment variables, then the
// shared credentials file with AWS_PROFILE, then IAM (here the container
// credentials endpoint, AWS_CONTAINER_CREDENTIALS_FULL_URI, served on
// loopback; EC2 instance metadata goes through the same provider). Each
// source alone must give a working backend.
func TestCredentialChain(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.NewBucket(t, srv).Bucket
	clearEnv := func(t *testing.T) {
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
			"AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
			"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
			t.Setenv(k, "")
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	}
	roundTrip := func(t *testing.T) {
		t.Helper()
		cfg := srv.Config(bucket)
		cfg.Credentials = nil // the default chain
		b := open(t, cfg)
		h := store.Handle{Type: store.SnapshotFile, Name: fmt.Sprintf("%x", time.Now().UnixNano())}
		data := []byte("credentials from the chain")
		if err := b.Put(t.Context(), h, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("put: %v", err)
		}
		if got, err := store.ReadAll(t.Context(), b, h); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get: %q, %v", got, err)
		}
	}

	t.Run("environment", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		roundTrip(t)
	})
	t.Run("shared file with AWS_PROFILE", func(t *testing.T) {
		clearEnv(t)
		file := filepath.Join(t.TempDir(), "credentials")
		body := fmt.Sprintf("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[bk]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
			srv.AccessKey, srv.SecretKey)
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
		t.Setenv("AWS_PROFILE", "bk")
		roundTrip(t)
	})
	t.Run("IAM container credentials", func(t *testing.T) {
		clearEnv(t)
		var asked atomic.Int32
		meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"AccessKeyId": srv.AccessKey, "SecretAccessKey": srv.SecretKey, "Token": "",
				"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			})
		}))
		t.Cleanup(meta.Close)
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", meta.URL+"/creds")
		roundTrip(t)
		if asked.Load() == 0 {
			t.Fatal("the credentials endpoint was never asked")
		}
	})
}
