package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// gatedReader holds its first Read until every reader of the gate started,
// so the snapshots of a batch are all writing at once; then it yields data
// and fails with err at the end (io.EOF: a clean end).
type gatedReader struct {
	gate    *sync.WaitGroup
	started bool
	data    *bytes.Reader
	err     error
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.started {
		g.started = true
		g.gate.Done()
		g.gate.Wait()
	}
	n, err := g.data.Read(p)
	if err == io.EOF && g.err != nil {
		err = g.err
	}
	return n, err
}

// TestBatchSharesPacks writes four sources through one batch at once: two
// identical streams, a small one and one whose source fails half-way. The
// good three are saved, the failed one leaves no snapshot, and the blobs of
// all of them share one data pack.
func TestBatchSharesPacks(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	ctx := context.Background()
	big := randomData(3, 300<<10)
	sources := []struct {
		name string
		data []byte
		err  error
	}{
		{"a", big, nil},
		{"b", big, nil},
		{"c", randomData(4, 40<<10), nil},
		{"broken", randomData(5, 100<<10), errors.New("connection reset by peer")},
	}
	b, err := r.NewBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gate, wg sync.WaitGroup
	gate.Add(len(sources))
	snaps := make([]*repo.Snapshot, len(sources))
	errs := make([]error, len(sources))
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := &gatedReader{gate: &gate, data: bytes.NewReader(src.data), err: src.err}
			snaps[i], errs[i] = b.SnapshotStream(ctx, rd, repo.SnapshotOptions{Name: src.name, Host: "h"})
		}()
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i, src := range sources {
		if src.err != nil {
			if !errors.Is(errs[i], src.err) || snaps[i] != nil {
				t.Fatalf("%s: want the source's error and no snapshot, got %v", src.name, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("%s: %v", src.name, errs[i])
		}
		mustRestore(t, r, snaps[i], src.data)
	}
	if list, _ := r.Snapshots(ctx, repo.Filter{}); len(list) != 3 {
		t.Fatalf("%d snapshots saved, want 3", len(list))
	}
	// One data pack (1 MiB packs hold all of it) and one tree pack.
	if n := len(names(t, be, store.PackFile)); n != 2 {
		t.Fatalf("%d packs, want 2: the batch did not share its packs", n)
	}
	if rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	// A fresh process sees the same.
	r2 := repotest.Reopen(t, be)
	for i, src := range sources {
		if snaps[i] != nil {
			s, err := r2.FindSnapshot(ctx, snaps[i].ID.String(), repo.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			mustRestore(t, r2, s, src.data)
		}
	}
}

// TestBatchSavesEarly checks that a snapshot of a batch is saved, with its
// blobs indexed, before the batch ends: a crash later keeps it.
func TestBatchSavesEarly(t *testing.T) {
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	ctx := context.Background()
	b, err := r.NewBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(9, 64<<10)
	s, err := b.SnapshotStream(ctx, bytes.NewReader(data), repo.SnapshotOptions{Name: "early", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	// The batch is never closed, as if the process died here.
	r2 := repotest.Reopen(t, clone(t, be))
	s2, err := r2.FindSnapshot(ctx, s.ID.String(), repo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	mustRestore(t, r2, s2, data)
	b.Abort()
}
