// Package repotest provides test helpers for code that needs a repository:
// one on the in-memory backend with cheap KDF parameters.
package repotest

import (
	"context"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// Password is the password of repositories made by New.
const Password = "test password"

// New returns a fresh repository on a mem backend, with its index loaded.
func New(t testing.TB) *repo.Repository {
	t.Helper()
	return NewOn(t, mem.New())
}

// NewOn initialises a repository on be with cheap KDF parameters.
func NewOn(t testing.TB, be store.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), be, []byte(Password), repo.InitOptions{KDF: crypt.TestKDF, Host: "testhost"})
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Reopen opens be again, as a new process would.
func Reopen(t testing.TB, be store.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, []byte(Password), repo.OpenOptions{Host: "testhost"})
	if err != nil {
		t.Fatalf("open repository: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}
