package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store/mem"
)

// textData returns n bytes of compressible, dump-like pseudo-random text.
func textData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"INSERT", "INTO", "users", "VALUES", "alice", "bob", "2026-11-22", "NULL", "\t", "\n", "42", "carol@example.com"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(byte('a' + rng.IntN(26)))
	}
	return b.Bytes()[:n]
}

func snapshot(t *testing.T, r *repo.Repository, name string, data []byte) *repo.Snapshot {
	t.Helper()
	s, err := r.SnapshotStream(context.Background(), bytes.NewReader(data), repo.SnapshotOptions{Name: name, Host: "h", AllowEmpty: true})
	if err != nil {
		t.Fatalf("snapshot %d bytes: %v", len(data), err)
	}
	return s
}

func restore(t *testing.T, r *repo.Repository, s *repo.Snapshot) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := r.RestoreStream(context.Background(), s, &out, nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return out.Bytes()
}

func TestRoundTripSizes(t *testing.T) {
	p := chunk.Params{}
	_ = p
	be := mem.New()
	r := repotest.NewOn(t, be)
	min := int(r.Config().Chunker.MinSize)
	max := int(r.Config().Chunker.MaxSize)
	sizes := []int{0, 1, min - 1, min, max, 3*max + 17, 40 << 20}
	for _, n := range sizes {
		data := textData(uint64(n), n)
		s := snapshot(t, r, "rt", data)
		if s.Size != int64(n) {
			t.Fatalf("size %d: snapshot records %d", n, s.Size)
		}
		// A fresh process must restore it too.
		r2 := repotest.Reopen(t, be)
		s2, err := r2.FindSnapshot(context.Background(), s.ID.String()[:10], repo.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got := restore(t, r2, s2); !bytes.Equal(got, data) {
			t.Fatalf("size %d: restored %d bytes that differ", n, len(got))
		}
	}
}

func TestDedupIdenticalStream(t *testing.T) {
	r := repotest.New(t)
	data := textData(7, 20<<20)
	s1 := snapshot(t, r, "a", data)
	s2 := snapshot(t, r, "a", data)
	if s1.AddedBytes == 0 || s2.AddedBytes != 0 {
		t.Fatalf("added bytes: first %d, second %d; want >0 and 0", s1.AddedBytes, s2.AddedBytes)
	}
	if s1.Tree != s2.Tree || s1.StreamHash != s2.StreamHash {
		t.Fatal("identical streams must have identical trees and hashes")
	}
	if s1.AddedBytes >= int64(len(data))/2 {
		t.Fatalf("text of %d bytes stored as %d: not compressed", len(data), s1.AddedBytes)
	}
}

func TestEmptyStreamRefused(t *testing.T) {
	r := repotest.New(t)
	_, err := r.SnapshotStream(context.Background(), bytes.NewReader(nil), repo.SnapshotOptions{Name: "e"})
	if !errors.Is(err, repo.ErrEmpty) {
		t.Fatalf("got %v, want ErrEmpty", err)
	}
	list, err := r.Snapshots(context.Background(), repo.Filter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("snapshots after refused empty stream: %d, %v", len(list), err)
	}
}
