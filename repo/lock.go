package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bk-backup/bk/store"
)

// Lock timing (FORMAT.md §11).
const (
	LockRefresh  = 5 * time.Minute
	LockStaleAge = 30 * time.Minute
	maxLockSize  = 64 << 10
)

// LockInfo is the content of a lock file.
type LockInfo struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	Username  string    `json:"username,omitempty"`
	PID       int       `json:"pid"`
}

// Stale reports whether the lock's holder is gone: the lock is older than
// LockStaleAge, or it was taken on this host by a process that has exited.
func (l LockInfo) Stale(host string, now time.Time) bool {
	if now.Sub(l.Time) > LockStaleAge {
		return true
	}
	if l.Host == host && l.PID > 0 {
		err := syscall.Kill(l.PID, 0)
		return errors.Is(err, syscall.ESRCH)
	}
	return false
}

func (l LockInfo) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock by PID %d on %s since %s", kind, l.PID, l.Host, l.Time.Format(time.RFC3339))
}

// Lock is a held repository lock. It refreshes itself until Unlock.
type Lock struct {
	r    *Repository
	info LockInfo
	mu   sync.Mutex
	name string
	stop chan struct{}
	done chan struct{}
}

// Lock takes a shared or an exclusive lock. A conflicting live lock yields an
// error matching ErrLocked that describes the holder.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	info := LockInfo{Time: time.Now().UTC(), Exclusive: exclusive, Host: r.host, Username: r.user, PID: os.Getpid()}
	name, err := r.writeLock(ctx, info)
	if err != nil {
		return nil, err
	}
	conflict, err := r.findConflict(ctx, name, exclusive)
	if err == nil && conflict != nil {
		err = fmt.Errorf("%s (run `bk unlock` if it is stale): %w", conflict, ErrLocked)
	}
	if err != nil {
		_ = r.be.Delete(context.WithoutCancel(ctx), store.Handle{Type: store.LockFile, Name: name})
		return nil, err
	}
	r.lockTaken(exclusive)
	l := &Lock{r: r, info: info, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	go l.refreshLoop()
	return l, nil
}

// lockTaken records a lock this Repository now holds. The index loaded
// before the first one may be stale (a prune may have run while no lock was
// held), so the next LoadIndex reads it again.
func (r *Repository) lockTaken(exclusive bool) {
	r.idxOnce.Lock()
	defer r.idxOnce.Unlock()
	if r.held == 0 {
		r.idxDone = false
		r.lockEpoch++
	}
	r.held++
	if exclusive {
		r.heldExcl++
	}
}

// lockReleased undoes lockTaken.
func (r *Repository) lockReleased(exclusive bool) {
	r.idxOnce.Lock()
	defer r.idxOnce.Unlock()
	r.held--
	if exclusive {
		r.heldExcl--
	}
}

// lockState reports whether this Repository holds any lock and an
// exclusive one, and the epoch: a number that changes whenever it takes a
// lock after holding none, so work planned under a lock can check that the
// lock was held without a gap until it is carried out.
func (r *Repository) lockState() (locked, exclusive bool, epoch uint64) {
	r.idxOnce.Lock()
	defer r.idxOnce.Unlock()
	return r.held > 0, r.heldExcl > 0, r.lockEpoch
}

// holdsExclusive reports whether this Repository holds an exclusive lock.
func (r *Repository) holdsExclusive() bool {
	_, excl, _ := r.lockState()
	return excl
}

func (r *Repository) writeLock(ctx context.Context, info LockInfo) (string, error) {
	plain, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	id, err := r.saveFile(ctx, store.LockFile, "lock", plain, false)
	if err != nil {
		return "", fmt.Errorf("write lock: %w", err)
	}
	return id.String(), nil
}

// findConflict returns a live lock other than ours that conflicts.
func (r *Repository) findConflict(ctx context.Context, own string, exclusive bool) (*LockInfo, error) {
	locks, err := r.Locks(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for name, l := range locks {
		if name == own || l == nil {
			continue
		}
		if (exclusive || l.Exclusive) && !l.Stale(r.host, now) {
			return l, nil
		}
	}
	return nil, nil
}

// Locks reads every lock file. An unreadable lock maps to nil.
func (r *Repository) Locks(ctx context.Context) (map[string]*LockInfo, error) {
	names, err := listNames(ctx, r.be, store.LockFile)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	out := make(map[string]*LockInfo, len(names))
	for _, name := range names {
		plain, err := r.loadFile(ctx, store.Handle{Type: store.LockFile, Name: name}, "lock", maxLockSize)
		if errors.Is(err, store.ErrNotFound) {
			continue // released while we listed
		}
		var l LockInfo
		if err != nil || json.Unmarshal(plain, &l) != nil {
			out[name] = nil
			continue
		}
		out[name] = &l
	}
	return out, nil
}

// RemoveLocks deletes stale and unreadable locks, or every lock when all is
// set, and returns how many it removed.
func (r *Repository) RemoveLocks(ctx context.Context, all bool) (int, error) {
	locks, err := r.Locks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for name, l := range locks {
		if !all && l != nil && !l.Stale(r.host, now) {
			continue
		}
		err := r.be.Delete(ctx, store.Handle{Type: store.LockFile, Name: name})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, fmt.Errorf("remove lock %s: %w", name[:8], err)
		}
		n++
	}
	return n, nil
}

func (l *Lock) refreshLoop() {
	defer close(l.done)
	t := time.NewTicker(LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			_ = l.refresh(context.Background())
		}
	}
}

// refresh writes a new lock file and removes the previous one.
func (l *Lock) refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	info := l.info
	info.Time = time.Now().UTC()
	name, err := l.r.writeLock(ctx, info)
	if err != nil {
		return err
	}
	old := l.name
	l.name, l.info = name, info
	return l.r.be.Delete(ctx, store.Handle{Type: store.LockFile, Name: old})
}

// Unlock stops refreshing and removes the lock file.
func (l *Lock) Unlock(ctx context.Context) error {
	close(l.stop)
	<-l.done
	l.r.lockReleased(l.info.Exclusive)
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.r.be.Delete(ctx, store.Handle{Type: store.LockFile, Name: l.name})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove lock: %w", err)
	}
	return nil
}
