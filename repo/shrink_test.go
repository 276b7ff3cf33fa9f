package repo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/repotest"
)

func TestSuspiciousShrink(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	full := textData(1, 4<<20)
	opts := repo.SnapshotOptions{Name: "db", Host: "h",
		Manifest: func() json.RawMessage { return json.RawMessage(`{"engine":"test"}`) }}
	s1, err := r.SnapshotStream(ctx, bytes.NewReader(full), opts)
	if err != nil || s1.Status != "" || string(s1.Manifest) != `{"engine":"test"}` || s1.Duration <= 0 {
		t.Fatalf("first snapshot: %v, status %q, manifest %s", err, s1.Status, s1.Manifest)
	}
	// Less than half of the last good snapshot: saved, but suspicious.
	s2, err := r.SnapshotStream(ctx, bytes.NewReader(full[:1<<20]), opts)
	if err != nil || s2.Status != repo.StatusSuspicious {
		t.Fatalf("shrunk snapshot: %v, status %q", err, s2.Status)
	}
	// The yardstick stays the last good snapshot, not the suspicious one.
	s3, err := r.SnapshotStream(ctx, bytes.NewReader(full[:3<<20]), opts)
	if err != nil || s3.Status != "" {
		t.Fatalf("recovered snapshot: %v, status %q", err, s3.Status)
	}
	// --fail-on-shrink: an error, and nothing recorded.
	opts.FailOnShrink = true
	if _, err := r.SnapshotStream(ctx, bytes.NewReader(full[:1<<10]), opts); !errors.Is(err, repo.ErrShrunk) {
		t.Fatalf("fail on shrink: got %v, want ErrShrunk", err)
	}
	list, err := r.Snapshots(ctx, repo.Filter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("snapshots after a refused shrink: %d, %v", len(list), err)
	}
	// Another source is measured on its own.
	if s, err := r.SnapshotStream(ctx, bytes.NewReader(full[:1<<10]), repo.SnapshotOptions{Name: "other", Host: "h"}); err != nil || s.Status != "" {
		t.Fatalf("other source: %v, status %q", err, s.Status)
	}
}
