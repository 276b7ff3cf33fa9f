package repo

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store/mem"
)

// TestPruneLocking: prune fails clearly while another process holds a live
// lock, proceeds past stale ones (a dead PID on this host, an old lock
// elsewhere), and executes a plan only under the exclusive lock it was made
// under.
func TestPruneLocking(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	pw := []byte("pw")
	r, err := Init(ctx, be, pw, InitOptions{KDF: crypt.TestKDF, PackSize: 1 << 20, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	other, err := Open(ctx, be, pw, OpenOptions{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 2 {
		data := bytes.Repeat([]byte{byte(i)}, 300<<10)
		if _, err := r.SnapshotStream(ctx, bytes.NewReader(data), SnapshotOptions{Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	prune := func() error {
		l, err := r.Lock(ctx, true)
		if err != nil {
			return err
		}
		defer l.Unlock(ctx)
		plan, err := r.PlanPrune(ctx, PruneOptions{})
		if err != nil {
			return err
		}
		return plan.Execute(ctx)
	}

	if _, err := r.PlanPrune(ctx, PruneOptions{}); err == nil || !strings.Contains(err.Error(), "needs a lock") {
		t.Fatalf("plan without a lock: %v", err)
	}

	// A live shared lock of another process (here: Repository) blocks prune.
	shared, err := other.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := prune(); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "shared lock by PID") {
		t.Fatalf("prune over a live shared lock: got %v, want ErrLocked naming the holder", err)
	}
	// A plan made under a shared lock (a dry run) cannot be executed.
	own, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := r.PlanPrune(ctx, PruneOptions{})
	if err != nil {
		t.Fatalf("dry-run plan under a shared lock: %v", err)
	}
	if err := plan.Execute(ctx); err == nil {
		t.Fatal("executed a plan made under a shared lock")
	}
	for _, l := range []*Lock{own, shared} {
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// A live lock on another host blocks too; stale ones do not.
	if _, err := other.writeLock(ctx, LockInfo{Time: time.Now().UTC(), Host: "elsewhere", PID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := prune(); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune over a live lock of another host: %v", err)
	}
	if _, err := other.RemoveLocks(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, stale := range []LockInfo{
		{Time: time.Now().UTC(), Exclusive: true, Host: "h", PID: 1 << 30},
		{Time: time.Now().Add(-LockStaleAge - time.Minute).UTC(), Host: "elsewhere", PID: 1},
	} {
		if _, err := other.writeLock(ctx, stale); err != nil {
			t.Fatal(err)
		}
	}
	if err := prune(); err != nil {
		t.Fatalf("prune past stale locks: %v", err)
	}

	// A plan is bound to the lock it was made under.
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	plan, err = r.PlanPrune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err = r.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	if err := plan.Execute(ctx); err == nil {
		t.Fatal("executed a plan after its lock was released and taken again")
	}
}
