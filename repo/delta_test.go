package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/local"
	"github.com/bk-backup/bk/store/mem"
)

// dumpTable is a table dump held as rows, so that each night can edit the
// previous night's rows the way a database changes between two dumps.
type dumpTable struct {
	rng  *rand.Rand
	rows [][]byte // each row ends in '\n'; rows are never modified, only replaced
	ids  []int
	next int
}

var (
	dumpNames    = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	dumpStatuses = []string{"active", "suspended", "pending", "closed"}
)

func newDumpTable(seed uint64, size int) *dumpTable {
	d := &dumpTable{rng: rand.New(rand.NewPCG(seed, 0xd5))}
	d.rows, d.ids = d.newRows(size)
	return d
}

// row returns a fresh version of the row with the given id.
func (d *dumpTable) row(id int) []byte {
	name := dumpNames[d.rng.IntN(len(dumpNames))]
	return fmt.Appendf(nil, "%d\t%s\t%s.%d@example.com\t%d.%02d\t2026-%02d-%02d\t%s\n", id, name, name,
		d.rng.IntN(10000), d.rng.IntN(100000), d.rng.IntN(100), 1+d.rng.IntN(12), 1+d.rng.IntN(28),
		dumpStatuses[d.rng.IntN(len(dumpStatuses))])
}

// newRows returns rows with new ids, about size bytes in all.
func (d *dumpTable) newRows(size int) (rows [][]byte, ids []int) {
	for n := 0; n < size; {
		d.next++
		r := d.row(d.next)
		rows, ids = append(rows, r), append(ids, d.next)
		n += len(r)
	}
	return rows, ids
}

func (d *dumpTable) bytes() []byte {
	var b bytes.Buffer
	b.WriteString("-- bk test dump\nCOPY public.accounts (id, name, email, balance, since, status) FROM stdin;\n")
	for _, r := range d.rows {
		b.Write(r)
	}
	b.WriteString("\\.\n")
	return b.Bytes()
}

// clone returns a copy that shares the (immutable) rows and draws its own
// random numbers.
func (d *dumpTable) clone() *dumpTable {
	return &dumpTable{rng: rand.New(rand.NewPCG(d.rng.Uint64(), 0xd5)),
		rows: slices.Clone(d.rows), ids: slices.Clone(d.ids), next: d.next}
}

// update gives row i new values in place.
func (d *dumpTable) update(i int) { d.rows[i] = d.row(d.ids[i]) }

// updateRandom updates k random rows.
func (d *dumpTable) updateRandom(k int) {
	for range k {
		d.update(d.rng.IntN(len(d.rows)))
	}
}

// insert adds k new rows at random places.
func (d *dumpTable) insert(k int) {
	for range k {
		rows, ids := d.newRows(1)
		i := d.rng.IntN(len(d.rows) + 1)
		d.rows, d.ids = slices.Insert(d.rows, i, rows...), slices.Insert(d.ids, i, ids...)
	}
}

// remove deletes k random rows.
func (d *dumpTable) remove(k int) {
	for range k {
		i := d.rng.IntN(len(d.rows))
		d.rows, d.ids = slices.Delete(d.rows, i, i+1), slices.Delete(d.ids, i, i+1)
	}
}

// appendRows adds about size bytes of new rows at the end.
func (d *dumpTable) appendRows(size int) {
	rows, ids := d.newRows(size)
	d.rows, d.ids = append(d.rows, rows...), append(d.ids, ids...)
}

// truncate drops the last part of the rows, at most a tenth.
func (d *dumpTable) truncate() {
	n := len(d.rows) - 1 - d.rng.IntN(len(d.rows)/10)
	d.rows, d.ids = d.rows[:n], d.ids[:n]
}

// shuffle reorders a block of up to 400 neighbouring rows, as a table
// rewritten by a VACUUM FULL or CLUSTER would.
func (d *dumpTable) shuffle() {
	n := 50 + d.rng.IntN(350)
	i := d.rng.IntN(len(d.rows) - n)
	d.rng.Shuffle(n, func(a, b int) {
		d.rows[i+a], d.rows[i+b] = d.rows[i+b], d.rows[i+a]
		d.ids[i+a], d.ids[i+b] = d.ids[i+b], d.ids[i+a]
	})
}

// deltaChunker cuts streams into chunks of 64 KiB on average, as
// InitOptions.ChunkSize 64 KiB does, but with a fixed polynomial so that the
// chunk boundaries, and so the test, are reproducible.
func deltaChunker() *chunk.Params {
	return &chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: testPol,
		MinSize: 16 << 10, MaxSize: 512 << 10, AverageBits: 16}
}

// initDeltaRepo creates a repository on be with small packs and, unless
// opts sets a chunker, chunks of 64 KiB on average.
func initDeltaRepo(t testing.TB, be store.Backend, opts repo.InitOptions) *repo.Repository {
	t.Helper()
	opts.KDF, opts.PackSize, opts.Host = crypt.TestKDF, 1<<20, "testhost"
	if opts.Chunker == nil && opts.ChunkSize == 0 {
		opts.ChunkSize = 64 << 10
	}
	r, err := repo.Init(context.Background(), be, []byte(repotest.Password), opts)
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// night snapshots data as the source "db" on host "h".
func night(t testing.TB, r *repo.Repository, data []byte, opts repo.SnapshotOptions) *repo.Snapshot {
	t.Helper()
	opts.Name, opts.Host = "db", "h"
	s, err := r.SnapshotStream(context.Background(), bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("snapshot of %d bytes: %v", len(data), err)
	}
	return s
}

// indexed returns the set of indexed blob IDs of r.
func indexed(t testing.TB, r *repo.Repository) map[crypt.ID]bool {
	t.Helper()
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := map[crypt.ID]bool{}
	r.Index().Each(func(l index.Location) { ids[l.Entry.ID] = true })
	return ids
}

// chainDepth follows the bases of blob id through the index and returns how
// many delta links lie below it (0 for a blob stored whole).
func chainDepth(t testing.TB, x *index.Index, id crypt.ID) int {
	t.Helper()
	for depth := 0; depth <= 64; depth++ {
		l, ok := x.Lookup(id)
		if !ok {
			t.Fatalf("blob %s at depth %d of a chain is not in the index", id.Short(), depth)
		}
		if l.Entry.Enc != pack.DeltaZstd {
			return depth
		}
		if l.Entry.Type != pack.DataBlob {
			t.Fatalf("%s blob %s is stored as a delta", l.Entry.Type, id.Short())
		}
		id = l.Entry.Base
	}
	t.Fatal("delta chain longer than 64: a cycle?")
	return 0
}

// newDeltas returns the delta blobs of r that are not in before, with the
// depth of each.
func newDeltas(t testing.TB, r *repo.Repository, before map[crypt.ID]bool) map[crypt.ID]int {
	t.Helper()
	var ids []crypt.ID
	r.Index().Each(func(l index.Location) {
		if l.Entry.Enc == pack.DeltaZstd && !before[l.Entry.ID] {
			ids = append(ids, l.Entry.ID)
		}
	})
	out := map[crypt.ID]int{}
	for _, id := range ids {
		out[id] = chainDepth(t, r.Index(), id)
	}
	return out
}

// checkChains asserts that no delta chain of r is deeper than the config
// allows, and returns the deepest.
func checkChains(t testing.TB, r *repo.Repository) int {
	t.Helper()
	deepest := 0
	for _, depth := range newDeltas(t, r, nil) {
		deepest = max(deepest, depth)
	}
	if limit := r.Config().Delta.MaxDepth; deepest > limit {
		t.Fatalf("a delta chain of depth %d exceeds the configured maximum %d", deepest, limit)
	}
	return deepest
}

// TestDeltaLongChain snapshots more nights than the chain depth allows. One
// hot row changes every night, so its chunk is new every night and its
// delta chain grows until the cap, where it must start again from the
// chain's root. Every night restores byte for byte, at once and from a new
// process, and costs a small fraction of the first.
func TestDeltaLongChain(t *testing.T) {
	be := mem.New()
	// A fixed polynomial: with a random one, an edit now and then moves a
	// chunk boundary so that one chunk is stored whole, and the bound on a
	// night's cost below would fail at random.
	r := initDeltaRepo(t, be, repo.InitOptions{Chunker: deltaChunker()})
	maxDepth := r.Config().Delta.MaxDepth
	if !r.Config().Delta.Enabled || maxDepth != repo.DefaultMaxDepth {
		t.Fatalf("new repository: delta config %+v", r.Config().Delta)
	}
	d := newDumpTable(1, 4<<20)
	hot := len(d.rows) / 2
	nights := repo.DefaultMaxDepth + 5
	var snaps []*repo.Snapshot
	var datas [][]byte
	hotDepth := make([]int, nights+1) // deepest new delta of each night
	for n := 1; n <= nights; n++ {
		if n > 1 {
			d.update(hot)
			d.updateRandom(2)
		}
		data := d.bytes()
		before := indexed(t, r)
		s := night(t, r, data, repo.SnapshotOptions{})
		mustRestore(t, r, s, data)
		mustRestore(t, repotest.Reopen(t, be), s, data)
		snaps, datas = append(snaps, s), append(datas, data)

		for _, depth := range newDeltas(t, r, before) {
			hotDepth[n] = max(hotDepth[n], depth)
		}
		checkChains(t, r)
		t.Logf("night %2d: %d chunks, added %6d bytes in %2d blobs, %d deltas, deepest new chain %d",
			n, s.Chunks, s.AddedBytes, s.AddedBlobs, s.AddedDeltas, hotDepth[n])
		switch {
		case n == 1 && (s.AddedDeltas != 0 || s.DeltaBase != nil):
			t.Fatalf("night 1 has no previous snapshot, yet %d deltas against %v", s.AddedDeltas, s.DeltaBase)
		case n > 1 && s.AddedDeltas == 0:
			t.Fatalf("night %d: no deltas", n)
		case n > 1 && (s.DeltaBase == nil || *s.DeltaBase != snaps[n-2].ID):
			t.Fatalf("night %d: delta base %v, want the previous snapshot %s", n, s.DeltaBase, snaps[n-2].ID.Short())
		case n > 1 && s.AddedBytes*50 > snaps[0].AddedBytes:
			t.Fatalf("night %d: 3 edited rows added %d bytes, more than 2%% of the first night's %d",
				n, s.AddedBytes, snaps[0].AddedBytes)
		}
	}
	// The hot chunk's chain grew one link a night up to the cap, then was
	// rebased on the root of its chain.
	capped := slices.Index(hotDepth, maxDepth)
	if capped < 0 || capped+1 > nights {
		t.Fatalf("chains never reached the maximum depth %d (deepest per night %v)", maxDepth, hotDepth)
	}
	if hotDepth[capped+1] >= maxDepth {
		t.Fatalf("after night %d reached depth %d, night %d added a chain of depth %d; want a rebase",
			capped, maxDepth, capped+1, hotDepth[capped+1])
	}
	for n := 2; n <= capped; n++ {
		if hotDepth[n] != n-1 {
			t.Fatalf("deepest new chain per night %v: want n-1 up to the cap", hotDepth)
		}
	}
	// A new process restores every night.
	r2 := repotest.Reopen(t, be)
	for i, s := range snaps {
		mustRestore(t, r2, s, datas[i])
	}
}

// TestDeltaChurn snapshots 30 nights of a table that changes by a seeded
// mix of patterns. Every night restores byte for byte, no chain exceeds the
// cap, small changes are stored as small deltas, and a night identical to
// an earlier one deduplicates completely, also against chunks stored as
// deltas.
func TestDeltaChurn(t *testing.T) {
	be := mem.New()
	r := initDeltaRepo(t, be, repo.InitOptions{Chunker: deltaChunker()})
	rng := rand.New(rand.NewPCG(30, 30))
	d := newDumpTable(2, 2<<20)

	patterns := []string{"update", "insert", "delete", "append", "truncate", "shuffle", "unchanged", "rewrite", "revert"}
	small := map[string]bool{"update": true, "insert": true, "delete": true, "truncate": true}
	// Nights 2 to 30: every pattern at least once (revert late enough to
	// have deltas to revert to), the rest drawn at random.
	plan := []string{"", ""}
	for len(plan) < 31 {
		plan = append(plan, patterns[rng.IntN(len(patterns)-1)])
	}
	for i, p := range patterns {
		plan[2+i*3] = p
	}
	plan[26] = "revert"

	type past struct {
		table *dumpTable
		data  []byte
		snap  *repo.Snapshot
	}
	var nights []past
	reverted := false
	for n := 1; n <= 30; n++ {
		p := plan[n]
		switch p {
		case "update":
			d.updateRandom(1 + rng.IntN(10))
		case "insert":
			d.insert(1 + rng.IntN(10))
		case "delete":
			d.remove(1 + rng.IntN(10))
		case "append":
			d.appendRows(rng.IntN(200 << 10))
		case "truncate":
			d.truncate()
		case "shuffle":
			d.shuffle()
		case "rewrite":
			d = newDumpTable(rng.Uint64(), 1<<20+rng.IntN(2<<20))
		case "revert":
			// The latest night before the previous one that added deltas.
			k := -1
			for i := len(nights) - 2; i >= 0 && k < 0; i-- {
				if nights[i].snap.AddedDeltas > 0 && !bytes.Equal(nights[i].data, nights[len(nights)-1].data) {
					k = i
				}
			}
			if k < 0 {
				t.Fatalf("night %d: no earlier night with deltas to revert to", n)
			}
			d = nights[k].table.clone()
			p = fmt.Sprintf("revert to night %d", k+1)
			reverted = true
		}
		data := d.bytes()
		s := night(t, r, data, repo.SnapshotOptions{})
		mustRestore(t, r, s, data)
		depth := checkChains(t, r)
		t.Logf("night %2d %-18s %7d bytes in %3d chunks: added %7d bytes, %3d blobs, %3d deltas; deepest chain %d",
			n, p, len(data), s.Chunks, s.AddedBytes, s.AddedBlobs, s.AddedDeltas, depth)
		nights = append(nights, past{d.clone(), data, s})

		first := nights[0].snap.AddedBytes
		switch {
		case plan[n] == "unchanged" || plan[n] == "revert":
			if s.AddedBytes != 0 || s.AddedBlobs != 0 {
				t.Fatalf("night %d (%s): added %d bytes in %d blobs; want nothing", n, p, s.AddedBytes, s.AddedBlobs)
			}
		case small[plan[n]]:
			if s.AddedDeltas == 0 {
				t.Fatalf("night %d (%s): no deltas", n, p)
			}
			if s.AddedBytes*20 > first {
				t.Fatalf("night %d (%s): added %d bytes, more than 5%% of the first night's %d", n, p, s.AddedBytes, first)
			}
		case plan[n] == "shuffle":
			if s.AddedDeltas == 0 {
				t.Fatalf("night %d (%s): no deltas", n, p)
			}
		}
	}
	if !reverted {
		t.Fatal("the plan had no revert")
	}
	r2 := repotest.Reopen(t, be)
	for _, p := range nights {
		mustRestore(t, r2, p.snap, p.data)
	}
}

// TestNoDelta checks both ways to store chunks whole: per snapshot
// (SnapshotOptions.NoDelta) and per repository (InitOptions.NoDelta). It
// also shows what deltas save: the same edit costs far less as a delta.
func TestNoDelta(t *testing.T) {
	noDeltas := func(t *testing.T, r *repo.Repository) {
		t.Helper()
		if err := r.LoadIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.Index().Each(func(l index.Location) {
			if l.Entry.Enc == pack.DeltaZstd {
				t.Fatalf("blob %s is stored as a delta", l.Entry.ID.Short())
			}
		})
	}

	t.Run("snapshot option", func(t *testing.T) {
		be := mem.New()
		r := initDeltaRepo(t, be, repo.InitOptions{Chunker: deltaChunker()})
		d := newDumpTable(3, 2<<20)
		s1 := night(t, r, d.bytes(), repo.SnapshotOptions{NoDelta: true})
		d.updateRandom(3)
		whole := d.bytes()
		s2 := night(t, r, whole, repo.SnapshotOptions{NoDelta: true})
		if s1.AddedDeltas != 0 || s2.AddedDeltas != 0 || s2.DeltaBase != nil {
			t.Fatalf("NoDelta snapshots: %d and %d deltas, base %v", s1.AddedDeltas, s2.AddedDeltas, s2.DeltaBase)
		}
		noDeltas(t, r)
		mustRestore(t, repotest.Reopen(t, be), s2, whole)

		d.updateRandom(3)
		data := d.bytes()
		s3 := night(t, r, data, repo.SnapshotOptions{})
		if s3.AddedDeltas == 0 {
			t.Fatal("the same repository without NoDelta stored no deltas")
		}
		t.Logf("3 edited rows: %d bytes stored whole, %d bytes as deltas", s2.AddedBytes, s3.AddedBytes)
		if s3.AddedBytes*4 > s2.AddedBytes {
			t.Fatalf("3 edited rows cost %d bytes as deltas and %d stored whole; want deltas 4x smaller", s3.AddedBytes, s2.AddedBytes)
		}
		mustRestore(t, repotest.Reopen(t, be), s3, data)
	})

	t.Run("repository setting", func(t *testing.T) {
		be := mem.New()
		r := initDeltaRepo(t, be, repo.InitOptions{NoDelta: true})
		if r.Config().Delta.Enabled {
			t.Fatalf("InitOptions.NoDelta: delta config %+v", r.Config().Delta)
		}
		if cfg := repotest.Reopen(t, be).Config(); cfg.Delta.Enabled {
			t.Fatalf("reopened: delta config %+v", cfg.Delta)
		}
		d := newDumpTable(4, 1<<20)
		for n := range 3 {
			d.updateRandom(3)
			data := d.bytes()
			s := night(t, r, data, repo.SnapshotOptions{})
			if s.AddedDeltas != 0 || s.DeltaBase != nil {
				t.Fatalf("night %d: %d deltas against %v", n+1, s.AddedDeltas, s.DeltaBase)
			}
			mustRestore(t, repotest.Reopen(t, be), s, data)
		}
		noDeltas(t, r)
	})

	// The version 1 fixture predates deltas: its config has no delta field,
	// and its trees carry no head fingerprints.
	t.Run("fixture without delta config", func(t *testing.T) {
		ctx := context.Background()
		dir, password := copyFixture(t)
		be, err := local.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repo.Open(ctx, be, []byte(password), repo.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Config().Delta != (repo.DeltaConfig{}) {
			t.Fatalf("fixture delta config %+v, want none", r.Config().Delta)
		}
		edited := fixtureText(1, 24<<10)
		copy(edited[5<<10:], "-- a new edit --")
		s, err := r.SnapshotStream(ctx, bytes.NewReader(edited), repo.SnapshotOptions{Name: "text-edited", Host: "fixture"})
		if err != nil {
			t.Fatal(err)
		}
		if s.AddedDeltas != 0 || s.DeltaBase != nil {
			t.Fatalf("a repository without delta config stored %d deltas against %v", s.AddedDeltas, s.DeltaBase)
		}
		mustRestore(t, r, s, edited)
		noDeltas(t, r)

		// Enabling deltas on it (as a later bk might) uses the version 1
		// trees, which have no head fingerprints, as bases by offset.
		cfg := r.Config()
		cfg.Delta = repo.DeltaConfig{Enabled: true, Algorithm: repo.DeltaAlgorithm, MaxDepth: repo.DefaultMaxDepth}
		sealed, err := masterKey(t, be, password).SealFile("config", rawJSON(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		rewrite(t, be, store.Handle{Type: store.ConfigFile}, func([]byte) []byte { return sealed })
		r2, err := repo.Open(ctx, be, []byte(password), repo.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		// The newest snapshot of "text" is the fixture's.
		copy(edited[15<<10:], "-- another edit --")
		s2, err := r2.SnapshotStream(ctx, bytes.NewReader(edited), repo.SnapshotOptions{Name: "text", Host: "fixture"})
		if err != nil {
			t.Fatal(err)
		}
		if s2.AddedDeltas == 0 {
			t.Fatal("no deltas against a version 1 tree")
		}
		mustRestore(t, r2, s2, edited)
		list, err := r2.Snapshots(ctx, repo.Filter{Tags: []string{"fixture"}})
		if err != nil {
			t.Fatal(err)
		}
		for i, fs := range fixtureStreams {
			mustRestore(t, r2, list[i], fs.data())
		}
	})
}
