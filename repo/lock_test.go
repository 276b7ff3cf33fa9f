package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store/mem"
)

func TestLockConflicts(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	a := repotest.NewOn(t, be)
	b := repotest.Reopen(t, be)

	s1, err := a.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Lock(ctx, false)
	if err != nil {
		t.Fatalf("two shared locks must coexist: %v", err)
	}
	if _, err := b.Lock(ctx, true); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("exclusive over shared: got %v, want ErrLocked", err)
	}
	for _, l := range []*repo.Lock{s1, s2} {
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	x, err := a.Lock(ctx, true)
	if err != nil {
		t.Fatalf("exclusive on a free repository: %v", err)
	}
	if _, err := b.Lock(ctx, false); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("shared over exclusive: got %v, want ErrLocked", err)
	}
	if err := x.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	locks, err := a.Locks(ctx)
	if err != nil || len(locks) != 0 {
		t.Fatalf("locks left after unlock: %d, %v", len(locks), err)
	}
}

func TestLockStale(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name  string
		info  repo.LockInfo
		stale bool
	}{
		{"fresh, live pid", repo.LockInfo{Time: now, Host: "h", PID: 1}, false},
		{"old", repo.LockInfo{Time: now.Add(-repo.LockStaleAge - time.Minute), Host: "other", PID: 1}, true},
		{"dead pid on this host", repo.LockInfo{Time: now, Host: "h", PID: 1 << 30}, true},
		{"dead pid elsewhere", repo.LockInfo{Time: now, Host: "other", PID: 1 << 30}, false},
	}
	for _, tc := range tests {
		if got := tc.info.Stale("h", now); got != tc.stale {
			t.Errorf("%s: stale = %v, want %v", tc.name, got, tc.stale)
		}
	}
}
