package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// rewriteConfig replaces the config of a repository with cfg, sealed with
// the repository's own key, as a newer or broken bk would write it.
func rewriteConfig(t *testing.T, be store.Backend, r *Repository, cfg any) {
	t.Helper()
	plain, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := r.sealFile("config", plain, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(context.Background(), store.Handle{Type: store.ConfigFile}, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsConfig(t *testing.T) {
	ctx := context.Background()
	pw := []byte("pw")
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   error
	}{
		{"newer format", func(c *Config) { c.Version = FormatVersion + 1 }, ErrNewerFormat},
		{"unknown cipher", func(c *Config) { c.Cipher = "rot13" }, ErrCorrupt},
		{"tiny pack size", func(c *Config) { c.PackSize = 10 }, ErrCorrupt},
		{"bad chunker", func(c *Config) { c.Chunker.MinSize = c.Chunker.MaxSize + 1 }, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New()
			r, err := Init(ctx, be, pw, InitOptions{KDF: crypt.TestKDF})
			if err != nil {
				t.Fatal(err)
			}
			cfg := r.Config()
			tc.mutate(&cfg)
			rewriteConfig(t, be, r, cfg)
			_, err = Open(ctx, be, pw, OpenOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("open: got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInitRefusesExisting(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	if _, err := Init(ctx, be, []byte("a"), InitOptions{KDF: crypt.TestKDF}); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, be, []byte("a"), InitOptions{KDF: crypt.TestKDF}); !errors.Is(err, ErrExists) {
		t.Fatalf("second init: got %v, want ErrExists", err)
	}
	// A store with files but no config is not initialised over either.
	be2 := mem.New()
	_ = be2.Put(ctx, store.Handle{Type: store.SnapshotFile, Name: "abc"}, bytes.NewReader([]byte("x")), 1)
	if _, err := Init(ctx, be2, []byte("a"), InitOptions{KDF: crypt.TestKDF}); !errors.Is(err, ErrExists) {
		t.Fatalf("init over stray files: got %v, want ErrExists", err)
	}
}

func TestOpenMissingAndWrongPassword(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, mem.New(), []byte("a"), OpenOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("open empty store: got %v, want ErrNotFound", err)
	}
	be := mem.New()
	if _, err := Init(ctx, be, []byte("right"), InitOptions{KDF: crypt.TestKDF}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, be, []byte("wrong"), OpenOptions{})
	if !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	if bytes.Contains([]byte(err.Error()), []byte("wrong\"")) || bytes.Contains([]byte(err.Error()), []byte("right")) {
		t.Fatalf("error leaks a password: %v", err)
	}
}
