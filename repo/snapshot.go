package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store"
)

// SnapshotVersion is the version of the snapshot JSON document.
const SnapshotVersion = 1

// Snapshot records one stored stream (FORMAT.md §9).
type Snapshot struct {
	ID       crypt.ID  `json:"-"`
	Version  int       `json:"version"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Username string    `json:"username,omitempty"`
	Name     string    `json:"name"`
	Tags     []string  `json:"tags,omitempty"`
	// Kind is KindStream or KindTree.
	Kind string `json:"kind"`
	// Tree is the root of the stream's tree; for a directory snapshot, of
	// the content stream (every file's bytes, in catalogue order).
	Tree crypt.ID `json:"tree"`
	// Size is the stream's size, or the total of a directory's files.
	Size int64 `json:"size"`
	// StreamHash is the keyed hash of the stream, or of the catalogue.
	StreamHash crypt.ID `json:"stream_hash"`
	// Catalog is the root of a directory snapshot's catalogue stream
	// (FORMAT.md §7.1), CatalogSize its size in bytes.
	Catalog     *crypt.ID `json:"catalog,omitempty"`
	CatalogSize int64     `json:"catalog_size,omitempty"`
	// Nodes counts a directory snapshot's entries; UnchangedFiles the files
	// taken from the previous snapshot without reading them.
	Nodes          int64 `json:"nodes,omitempty"`
	UnchangedFiles int64 `json:"unchanged_files,omitempty"`
	Chunks         int64 `json:"chunks"`
	AddedBytes     int64 `json:"added_bytes"`
	AddedBlobs     int64 `json:"added_blobs"`
	// AddedDeltas counts the added blobs stored as deltas.
	AddedDeltas int64 `json:"added_deltas,omitempty"`
	// DeltaBase is the snapshot whose chunks served as delta bases.
	DeltaBase *crypt.ID `json:"delta_base,omitempty"`
	Command   string    `json:"command,omitempty"`
	Program   string    `json:"program,omitempty"`
	// Status is empty for a good snapshot, else StatusSuspicious or
	// StatusBroken. Such a snapshot never fills a keep bucket of forget.
	Status string `json:"status,omitempty"`
	// Manifest is the engine's description of the dump: server and tool
	// versions, database, row counts (engines.Manifest), when there is one.
	Manifest json.RawMessage `json:"manifest,omitempty"`
	// Duration is how long the snapshot took, in seconds.
	Duration float64 `json:"duration_seconds,omitempty"`
}

// Snapshot statuses.
const (
	StatusSuspicious = "suspicious"
	StatusBroken     = "broken"
)

// roots returns the tree roots of the snapshot's streams: the stream, or
// the content and catalogue of a directory tree.
func (s *Snapshot) roots() []crypt.ID {
	if s.Catalog != nil {
		return []crypt.ID{s.Tree, *s.Catalog}
	}
	return []crypt.ID{s.Tree}
}

// HasTag reports whether the snapshot carries tag.
func (s *Snapshot) HasTag(tag string) bool { return slices.Contains(s.Tags, tag) }

// Filter selects snapshots; empty fields match everything.
type Filter struct {
	Name string
	Host string
	Tags []string // all must be present
}

// Match reports whether s passes the filter.
func (f Filter) Match(s *Snapshot) bool {
	if f.Name != "" && s.Name != f.Name || f.Host != "" && s.Host != f.Host {
		return false
	}
	for _, t := range f.Tags {
		if !s.HasTag(t) {
			return false
		}
	}
	return true
}

// SaveSnapshot stores a snapshot file and sets s.ID.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) error {
	s.Version = SnapshotVersion
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	id, err := r.saveFile(ctx, store.SnapshotFile, "snapshot", plain, false)
	if err != nil {
		return err
	}
	s.ID = id
	return nil
}

// LoadSnapshot reads one snapshot by its full ID.
func (r *Repository) LoadSnapshot(ctx context.Context, id crypt.ID) (*Snapshot, error) {
	plain, err := r.loadFile(ctx, store.Handle{Type: store.SnapshotFile, Name: id.String()}, "snapshot", maxSnapshotSize)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, corrupt(err, "snapshot %s", id.Short())
	}
	if s.Version > SnapshotVersion {
		return nil, fmt.Errorf("snapshot %s has version %d: %w", id.Short(), s.Version, ErrNewerFormat)
	}
	s.ID = id
	return &s, nil
}

// Snapshots loads every snapshot that matches f, oldest first.
func (r *Repository) Snapshots(ctx context.Context, f Filter) ([]*Snapshot, error) {
	names, err := listNames(ctx, r.be, store.SnapshotFile)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	all := make([]*Snapshot, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range names {
		g.Go(func() error {
			id, err := crypt.ParseID(name)
			if err != nil {
				return nil // not a snapshot name; ignore
			}
			s, err := r.LoadSnapshot(gctx, id)
			if err != nil {
				return err
			}
			all[i] = s
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if s != nil && f.Match(s) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// FindSnapshot resolves "latest" (the newest snapshot matching f), a full
// ID or a unique ID prefix.
func (r *Repository) FindSnapshot(ctx context.Context, ref string, f Filter) (*Snapshot, error) {
	if ref == "latest" {
		list, err := r.Snapshots(ctx, f)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("no snapshot matches the filter: %w", ErrNoMatch)
		}
		return list[len(list)-1], nil
	}
	ref = strings.ToLower(ref)
	names, err := listNames(ctx, r.be, store.SnapshotFile)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	name, err := uniquePrefix("snapshot", ref, names)
	if err != nil {
		return nil, err
	}
	id, err := crypt.ParseID(name)
	if err != nil {
		return nil, corrupt(err, "snapshot name %q", name)
	}
	return r.LoadSnapshot(ctx, id)
}

// FindFile resolves a unique name prefix of a file of type t.
func (r *Repository) FindFile(ctx context.Context, t store.FileType, prefix string) (string, error) {
	names, err := listNames(ctx, r.be, t)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", t, err)
	}
	return uniquePrefix(string(t), strings.ToLower(prefix), names)
}
