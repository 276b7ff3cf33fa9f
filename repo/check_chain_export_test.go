package repo

import (
	"context"
	"sync"

	"github.com/bk-backup/bk/crypt"
)

// CheckCountingDecodes is r.Check that also returns how many times the
// check decoded each blob.
func CheckCountingDecodes(ctx context.Context, r *Repository, opts CheckOptions) (*CheckReport, map[crypt.ID]int, error) {
	var mu sync.Mutex
	counts := map[crypt.ID]int{}
	opts.onDecode = func(id crypt.ID) {
		mu.Lock()
		counts[id]++
		mu.Unlock()
	}
	rep, err := r.Check(ctx, opts)
	return rep, counts, err
}
