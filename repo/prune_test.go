package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/mem"
)

// prDump is a dump-like text of numbered rows; each night edits a few.
type prDump struct {
	rows [][]byte
	rng  *rand.Rand
}

func newPrDump(seed uint64, size int) *prDump {
	d := &prDump{rng: rand.New(rand.NewPCG(seed, 7))}
	for n := 0; n < size; {
		d.rows = append(d.rows, d.row(len(d.rows)))
		n += len(d.rows[len(d.rows)-1])
	}
	return d
}

func (d *prDump) row(i int) []byte {
	return fmt.Appendf(nil, "%07d\tuser%06d@example.com\t%d\t%x\tactive\n", i, d.rng.IntN(1e6), d.rng.IntN(1e9), d.rng.Uint64())
}

// edit rewrites k random rows.
func (d *prDump) edit(k int) {
	for range k {
		i := d.rng.IntN(len(d.rows))
		d.rows[i] = d.row(i)
	}
}

func (d *prDump) bytes() []byte { return bytes.Join(d.rows, nil) }

var prEpoch = time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC)

// prInit creates a repository of small chunks and packs, with deltas: the
// chunker of InitOptions{ChunkSize: 64 << 10} with a fixed polynomial, so
// every run cuts the same chunks.
func prInit(t testing.TB, be store.Backend) *repo.Repository {
	t.Helper()
	cp := &chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: testPol, MinSize: 16 << 10, MaxSize: 512 << 10, AverageBits: 16}
	r, err := repo.Init(context.Background(), be, []byte(repotest.Password),
		repo.InitOptions{KDF: crypt.TestKDF, Chunker: cp, PackSize: 1 << 20, Host: "testhost"})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// prOpen opens be as a new process would. One worker makes the packs and
// the operations of a prune the same on every run.
func prOpen(t testing.TB, be store.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, []byte(repotest.Password), repo.OpenOptions{Host: "testhost", Workers: 1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// prSnap stores data as snapshot name of night day.
func prSnap(t testing.TB, r *repo.Repository, name string, day int, data []byte) *repo.Snapshot {
	t.Helper()
	s, err := r.SnapshotStream(context.Background(), bytes.NewReader(data),
		repo.SnapshotOptions{Name: name, Host: "db1", Time: prEpoch.AddDate(0, 0, day)})
	if err != nil {
		t.Fatalf("snapshot %s night %d: %v", name, day, err)
	}
	return s
}

// prLocked runs fn under a lock of r.
func prLocked(t testing.TB, r *repo.Repository, exclusive bool, fn func() error) error {
	t.Helper()
	l, err := r.Lock(context.Background(), exclusive)
	if err != nil {
		return err
	}
	err = fn()
	if uerr := l.Unlock(context.Background()); err == nil {
		err = uerr
	}
	return err
}

// prPrune plans and executes a prune under an exclusive lock.
func prPrune(t testing.TB, r *repo.Repository, opts repo.PruneOptions) (*repo.PrunePlan, error) {
	t.Helper()
	var plan *repo.PrunePlan
	err := prLocked(t, r, true, func() error {
		var err error
		if plan, err = r.PlanPrune(context.Background(), opts); err != nil {
			return err
		}
		return plan.Execute(context.Background())
	})
	return plan, err
}

// prPackBytes returns the total size of the stored packs.
func prPackBytes(t testing.TB, be store.Backend) int64 {
	t.Helper()
	var n int64
	if err := be.List(context.Background(), store.PackFile, func(fi store.FileInfo) error { n += fi.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// prFiles returns every stored file name with its size, but locks.
func prFiles(t testing.TB, be store.Backend) []string {
	t.Helper()
	var out []string
	for _, ft := range store.AllTypes {
		if ft == store.ConfigFile || ft == store.LockFile {
			continue
		}
		err := be.List(context.Background(), ft, func(fi store.FileInfo) error {
			out = append(out, fmt.Sprintf("%s/%s %d", ft, fi.Name, fi.Size))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// prFixture is a repository after forget: six nights of "app", each
// editing a few rows of the last (delta chains through every night), with a
// table on night 2 that the next night drops and one on night 3 that the
// next night cuts to a quarter (so packs of forgotten nights hold used and
// unused blobs); two nights of "crm", whose stream is app's
// with another head, so its chunks deduplicate against app's; and a
// "scratch" snapshot of random data. Forgetting kept the last two nights of
// each name and removed scratch by ID.
type prFixture struct {
	be        *mem.Backend
	want      map[crypt.ID][]byte // kept snapshot → content
	kept      map[crypt.ID]*repo.Snapshot
	added     map[crypt.ID]string // blob → the snapshot that added it ("app3")
	forgotten []string            // labels of forgotten snapshots
}

func newPrFixture(t testing.TB) *prFixture {
	t.Helper()
	ctx := context.Background()
	f := &prFixture{be: mem.New(), want: map[crypt.ID][]byte{}, kept: map[crypt.ID]*repo.Snapshot{}, added: map[crypt.ID]string{}}
	r := prInit(t, f.be)
	labels := map[crypt.ID]string{}
	data := map[crypt.ID][]byte{}
	record := func(s *repo.Snapshot, label string, d []byte) {
		labels[s.ID], data[s.ID] = label, d
		r.Index().Each(func(l index.Location) {
			if _, ok := f.added[l.Entry.ID]; !ok {
				f.added[l.Entry.ID] = label
			}
		})
	}
	app := newPrDump(1, 2<<20)
	table2, table3 := newPrDump(2, 1<<20).bytes(), newPrDump(3, 1<<20).bytes()
	for night := 1; night <= 6; night++ {
		if night > 1 {
			app.edit(5)
		}
		d := app.bytes()
		switch {
		case night == 2:
			d = append(d, table2...) // dropped the next night
		case night == 3:
			d = append(d, table3...) // cut to its first quarter the next night
		case night > 3:
			d = append(d, table3[:256<<10]...)
		}
		s := prSnap(t, r, "app", night, d)
		if night > 2 && s.AddedDeltas == 0 {
			t.Fatalf("app night %d stored no delta", night)
		}
		record(s, fmt.Sprint("app", night), d)
		if night == 4 || night == 6 {
			crm := append(newPrDump(uint64(10+night), 32<<10).bytes(), d[48<<10:]...)
			record(prSnap(t, r, "crm", night, crm), fmt.Sprint("crm", night), crm)
		}
	}
	scratch := prSnap(t, r, "scratch", 2, randomData(9, 1<<20))
	record(scratch, "scratch", nil)

	err := prLocked(t, r, true, func() error {
		list, err := r.Snapshots(ctx, repo.Filter{})
		if err != nil {
			return err
		}
		plans, err := repo.PlanForget(list, repo.Policy{Last: 2})
		if err != nil {
			return err
		}
		remove := []crypt.ID{scratch.ID}
		for _, g := range plans {
			for _, s := range g.Removed() {
				remove = append(remove, s.ID)
			}
			for _, s := range g.Kept() {
				if s.ID != scratch.ID {
					f.want[s.ID], f.kept[s.ID] = data[s.ID], s
				}
			}
		}
		for _, id := range remove {
			f.forgotten = append(f.forgotten, labels[id])
		}
		return r.RemoveSnapshots(ctx, remove)
	})
	if err != nil {
		t.Fatalf("forget: %v", err)
	}
	slices.Sort(f.forgotten)
	if want := []string{"app1", "app2", "app3", "app4", "scratch"}; !slices.Equal(f.forgotten, want) {
		t.Fatalf("forgot %v, want %v", f.forgotten, want)
	}
	return f
}

// verify checks the repository in a new process (bk check --read-data
// finds no error) and that exactly the kept snapshots remain and restore.
func (f *prFixture) verify(t testing.TB, be store.Backend) {
	t.Helper()
	r := prOpen(t, be)
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v, %+v", err, rep)
	}
	list, err := r.Snapshots(context.Background(), repo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(f.want) {
		t.Fatalf("%d snapshots, want %d", len(list), len(f.want))
	}
	for _, s := range list {
		want, ok := f.want[s.ID]
		if !ok {
			t.Fatalf("unexpected snapshot %s", s.ID.Short())
		}
		mustRestore(t, r, s, want)
	}
}

// usedBlobs returns the blobs the kept snapshots need, with their index
// entries, reading the repository in be afresh.
func (f *prFixture) usedBlobs(t testing.TB, be store.Backend) map[crypt.ID]pack.Entry {
	t.Helper()
	ctx := context.Background()
	r := prOpen(t, be)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	used := map[crypt.ID]pack.Entry{}
	for _, s := range f.kept {
		err := r.SnapshotBlobs(ctx, s, func(_ pack.BlobType, id crypt.ID, missing bool) error {
			if missing {
				return fmt.Errorf("blob %s is missing", id.Short())
			}
			loc, _ := r.Index().Lookup(id)
			used[id] = loc.Entry
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot %s: %v", s.ID.Short(), err)
		}
	}
	return used
}

// TestPruneKeepsDeltaBases forgets old nights whose chunks are the delta
// bases of the kept nights, and of another source that deduplicated against
// them: prune keeps those bases, reclaims what only the forgotten snapshots
// used, and every kept snapshot restores byte-identical.
func TestPruneKeepsDeltaBases(t *testing.T) {
	f := newPrFixture(t)
	used := f.usedBlobs(t, f.be)

	// The test is meaningful only if kept deltas have bases added by
	// forgotten nights, and crm uses blobs that app's old nights added.
	forgotten := func(id crypt.ID) bool { return slices.Contains(f.forgotten, f.added[id]) }
	var oldBases, crossGroup int
	for id, e := range used {
		if e.Enc == pack.DeltaZstd && !forgotten(id) && forgotten(e.Base) {
			oldBases++
		}
		if forgotten(id) && strings.HasPrefix(f.added[id], "app") {
			crossGroup++
		}
	}
	if oldBases == 0 || crossGroup == 0 {
		t.Fatalf("fixture: %d kept deltas on bases of forgotten nights, %d used blobs added by forgotten nights", oldBases, crossGroup)
	}
	t.Logf("%d used blobs; %d kept deltas have a base added by a forgotten night; %d used blobs were added by forgotten nights", len(used), oldBases, crossGroup)

	before := prPackBytes(t, f.be)
	plan, err := prPrune(t, prOpen(t, f.be), repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	after := prPackBytes(t, f.be)
	t.Logf("prune: %d packs deleted, %d repacked, %d kept; %d → %d bytes", len(plan.Delete), len(plan.Repack), plan.KeepPacks, before, after)
	if plan.UsedBlobs != len(used) {
		t.Errorf("plan counts %d used blobs, the snapshots need %d", plan.UsedBlobs, len(used))
	}
	if after >= before || before-after < 1<<20 {
		t.Errorf("pack bytes %d → %d: the random snapshot and the dropped tables were not reclaimed", before, after)
	}
	f.verify(t, f.be)

	// Every used blob keeps its encoding and base; the scratch data is gone.
	r := prOpen(t, f.be)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, e := range used {
		loc, ok := r.Index().Lookup(id)
		if !ok || loc.Entry.Enc != e.Enc || loc.Entry.Base != e.Base {
			t.Fatalf("blob %s: after prune %v %+v, before %+v", id.Short(), ok, loc.Entry, e)
		}
	}
	for id, label := range f.added {
		if label == "scratch" && r.Index().Has(id) {
			t.Fatalf("blob %s of the forgotten scratch snapshot survived", id.Short())
		}
	}

	// A second prune has nothing to do.
	plan, err = prPrune(t, prOpen(t, f.be), repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused})
	if err != nil || !plan.Empty() {
		t.Fatalf("second prune: %v, plan %+v", err, plan)
	}
}

// TestPruneRepackKeepsChains repacks every partly used pack: blobs move to
// new packs as stored, deltas stay deltas of the same base, and every kept
// snapshot restores.
func TestPruneRepackKeepsChains(t *testing.T) {
	f := newPrFixture(t)
	used := f.usedBlobs(t, f.be)
	plan, err := prPrune(t, prOpen(t, f.be), repo.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Repack) == 0 || plan.CopyBytes < 64<<10 {
		t.Fatalf("max-unused 0 should repack whole chunks and deltas: %+v", plan)
	}
	t.Logf("repacked %d packs (%d bytes), copying %d bytes; deleted %d", len(plan.Repack), plan.RepackBytes, plan.CopyBytes, len(plan.Delete))
	f.verify(t, f.be)

	r := prOpen(t, f.be)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	deltas := 0
	for id, e := range used {
		loc, ok := r.Index().Lookup(id)
		if !ok || loc.Entry.Enc != e.Enc || loc.Entry.Base != e.Base || loc.Entry.RawLength != e.RawLength {
			t.Fatalf("blob %s: after repack %v %+v, before %+v", id.Short(), ok, loc.Entry, e)
		}
		if e.Enc == pack.DeltaZstd {
			deltas++
		}
	}
	if deltas == 0 {
		t.Fatal("no used delta blob")
	}
	// Nothing unused is left, so the same prune again has nothing to do.
	if n := r.Index().Len(); n != len(used) {
		t.Errorf("index holds %d blobs, %d are used", n, len(used))
	}
	plan, err = prPrune(t, prOpen(t, f.be), repo.PruneOptions{})
	if err != nil || !plan.Empty() {
		t.Fatalf("second prune: %v, plan %+v", err, plan)
	}
	f.verify(t, f.be)
}

// TestPruneRepackBound: --max-repack-size limits the packs repacked.
func TestPruneRepackBound(t *testing.T) {
	f := newPrFixture(t)
	r := prOpen(t, f.be)
	var all, bounded *repo.PrunePlan
	err := prLocked(t, r, true, func() error {
		var err error
		if all, err = r.PlanPrune(context.Background(), repo.PruneOptions{}); err != nil {
			return err
		}
		bounded, err = r.PlanPrune(context.Background(), repo.PruneOptions{MaxRepackSize: all.Repack[0].Size + 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Repack) < 2 || len(bounded.Repack) != 1 || bounded.RepackBytes > all.Repack[0].Size+1 {
		t.Fatalf("unbounded plan repacks %d packs, bounded %d (%d bytes)", len(all.Repack), len(bounded.Repack), bounded.RepackBytes)
	}
	if bounded.KeepPacks != all.KeepPacks+len(all.Repack)-1 {
		t.Errorf("bounded plan keeps %d packs, want %d", bounded.KeepPacks, all.KeepPacks+len(all.Repack)-1)
	}
}

// TestPruneRefusesDamage: a blob a snapshot needs that is missing from the
// index, or in a missing or truncated pack, makes prune refuse and change
// nothing. A snapshot marked broken is the exception: its missing blobs are
// reported, and the unindexed packs that might still hold them are kept.
func TestPruneRefusesDamage(t *testing.T) {
	ctx := context.Background()
	base := newPrFixture(t)
	// crm6: no other snapshot uses the blobs it added
	var crm6 *repo.Snapshot
	for _, s := range base.kept {
		if s.Name == "crm" && (crm6 == nil || s.Time.After(crm6.Time)) {
			crm6 = s
		}
	}
	// a blob added by crm6 and the index file and pack that hold it
	r := prOpen(t, base.be)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	var blob index.Location
	r.Index().Each(func(l index.Location) {
		if base.added[l.Entry.ID] == "crm6" && l.Entry.Type == pack.DataBlob {
			blob = l
		}
	})
	var idxFile string
	for _, name := range names(t, base.be, store.IndexFile) {
		f, err := r.LoadIndexFile(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			if p.ID == blob.Pack.ID {
				idxFile = name
			}
		}
	}
	packH := store.Handle{Type: store.PackFile, Name: blob.Pack.ID.String()}

	for _, tc := range []struct {
		name    string
		damage  func(be store.Backend)
		wantErr string
	}{
		{"index file lost", func(be store.Backend) {
			if err := be.Delete(ctx, store.Handle{Type: store.IndexFile, Name: idxFile}); err != nil {
				t.Fatal(err)
			}
		}, "missing from the index"},
		{"pack lost", func(be store.Backend) {
			if err := be.Delete(ctx, packH); err != nil {
				t.Fatal(err)
			}
		}, "is missing"},
		{"pack truncated", func(be store.Backend) { rewrite(t, be, packH, truncateTo(-10)) }, "the index says"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			tc.damage(be)
			before := prFiles(t, be)
			_, err := prPrune(t, prOpen(t, be), repo.PruneOptions{})
			if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("got %v, want a refusal mentioning %q", err, tc.wantErr)
			}
			if after := prFiles(t, be); !slices.Equal(before, after) {
				t.Fatalf("a refused prune changed the repository:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	t.Run("broken snapshot", func(t *testing.T) {
		be := clone(t, base.be)
		if err := be.Delete(ctx, store.Handle{Type: store.IndexFile, Name: idxFile}); err != nil {
			t.Fatal(err)
		}
		r := prOpen(t, be)
		broken := *crm6
		broken.Status = repo.StatusBroken
		err := prLocked(t, r, true, func() error {
			if err := r.SaveSnapshot(ctx, &broken); err != nil {
				return err
			}
			return r.RemoveSnapshots(ctx, []crypt.ID{crm6.ID})
		})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := prPrune(t, prOpen(t, be), repo.PruneOptions{})
		if err != nil {
			t.Fatalf("prune with a broken snapshot: %v", err)
		}
		if w := strings.Join(plan.Warnings, "\n"); !strings.Contains(w, "marked broken") || !strings.Contains(w, "repair index") {
			t.Fatalf("warnings %q", plan.Warnings)
		}
		if _, err := be.Stat(ctx, packH); err != nil {
			t.Fatalf("the unindexed pack that holds the broken snapshot's blobs was deleted: %v", err)
		}
		r = prOpen(t, be)
		for id, s := range base.kept {
			if id != crm6.ID {
				mustRestore(t, r, s, base.want[id])
			}
		}
	})
}

// TestPruneFaultSweep fails each write and delete of a prune in turn, before
// it takes effect and after (a lost reply), as a crash at that point would
// stop it: every kept snapshot still restores, and a rerun finishes the
// prune.
func TestPruneFaultSweep(t *testing.T) {
	base := newPrFixture(t)
	opts := repo.PruneOptions{} // repack too
	count := func() (lockOps, pruneOps int) {
		fb := faulty.New(clone(t, base.be))
		r := prOpen(t, fb)
		err := prLocked(t, r, true, func() error {
			lockOps = fb.Count(faulty.Writes)
			plan, err := r.PlanPrune(context.Background(), opts)
			if err == nil {
				err = plan.Execute(context.Background())
			}
			pruneOps = fb.Count(faulty.Writes) - lockOps
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return lockOps, pruneOps
	}
	lockOps, n := count()
	t.Logf("a prune takes %d writes and deletes", n)
	if n < 8 {
		t.Fatalf("only %d writes: the fixture should need repacking and deleting", n)
	}
	for _, late := range []bool{false, true} {
		for i := 1; i <= n; i++ {
			t.Run(fmt.Sprintf("late=%v/%d", late, i), func(t *testing.T) {
				be := clone(t, base.be)
				fault := faulty.Fail(nil).On(faulty.Writes).Nth(lockOps + i)
				if late {
					fault = fault.Late()
				}
				fb := faulty.New(be, fault)
				_, err := prPrune(t, prOpen(t, fb), opts)
				if len(fb.Unfired()) > 0 {
					t.Fatal("the fault never fired")
				}
				if !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("prune: got %v, want the injected error", err)
				}
				base.verify(t, be)
				if _, err := prPrune(t, prOpen(t, be), opts); err != nil {
					t.Fatalf("rerun: %v", err)
				}
				base.verify(t, be)
				plan, err := prPrune(t, prOpen(t, be), opts)
				if err != nil || !plan.Empty() {
					t.Fatalf("after the rerun: %v, plan %+v", err, plan)
				}
			})
		}
	}
}

// TestPruneConcurrentSnapshots runs snapshots (one Repository) and
// forget+prune (another) against one backend at the same time, many times.
// Each waits for the other's lock. Every snapshot that reported success
// and was not forgotten restores byte-identical at the end.
func TestPruneConcurrentSnapshots(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	prInit(t, be)
	writer, pruner := prOpen(t, be), prOpen(t, be)

	type result struct {
		snap *repo.Snapshot
		data []byte
	}
	var (
		mu      sync.Mutex
		results []result
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	// retry runs fn under a lock, retrying while the other side holds one.
	retry := func(r *repo.Repository, exclusive bool, fn func() error) error {
		for {
			err := prLocked(t, r, exclusive, fn)
			if !errors.Is(err, repo.ErrLocked) {
				return err
			}
			time.Sleep(time.Millisecond)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		d := newPrDump(5, 512<<10)
		for i := range 16 {
			d.edit(3)
			data := d.bytes()
			name := []string{"stable", "churn"}[i%2]
			if i%5 == 4 {
				data = append(data, randomData(byte(i), 200<<10)...) // unique data, soon dead
			}
			err := retry(writer, false, func() error {
				s, err := writer.SnapshotStream(ctx, bytes.NewReader(data),
					repo.SnapshotOptions{Name: name, Host: "db1", Time: prEpoch.Add(time.Duration(i) * time.Hour)})
				if err == nil {
					mu.Lock()
					results = append(results, result{s, data})
					mu.Unlock()
				}
				return err
			})
			if err != nil {
				t.Errorf("snapshot %d: %v", i, err)
				return
			}
			time.Sleep(2 * time.Millisecond) // let the pruner in
		}
	}()
	prunes, reclaimed := 0, 0
	prune := func() error {
		list, err := pruner.Snapshots(ctx, repo.Filter{Name: "churn"})
		if err != nil || len(list) == 0 {
			return err
		}
		plans, err := repo.PlanForget(list, repo.Policy{Last: 1})
		if err != nil {
			return err
		}
		var ids []crypt.ID
		for _, s := range plans[0].Removed() {
			ids = append(ids, s.ID)
		}
		if err := pruner.RemoveSnapshots(ctx, ids); err != nil {
			return err
		}
		plan, err := pruner.PlanPrune(ctx, repo.PruneOptions{})
		if err != nil {
			return err
		}
		prunes++
		if len(plan.Delete)+len(plan.Repack) > 0 {
			reclaimed++
		}
		return plan.Execute(ctx)
	}
	var pruneErr error
loop:
	for pruneErr == nil {
		select {
		case <-done:
			break loop
		default:
		}
		pruneErr = retry(pruner, true, prune)
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if pruneErr != nil {
		t.Fatalf("prune: %v", pruneErr)
	}
	if err := retry(pruner, true, prune); err != nil {
		t.Fatalf("final prune: %v", err)
	}
	t.Logf("%d snapshots, %d prunes, %d of which reclaimed packs", len(results), prunes, reclaimed)
	if reclaimed < 3 || len(results) != 16 {
		t.Fatalf("%d prunes reclaimed packs, %d snapshots: the two did not interleave", reclaimed, len(results))
	}

	r := prOpen(t, be)
	if rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check: %v, %+v", err, rep)
	}
	list, err := r.Snapshots(ctx, repo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	exists := map[crypt.ID]bool{}
	for _, s := range list {
		exists[s.ID] = true
	}
	restored := 0
	for _, res := range results {
		if res.snap.Name == "stable" && !exists[res.snap.ID] {
			t.Fatalf("stable snapshot %s is gone", res.snap.ID.Short())
		}
		if exists[res.snap.ID] {
			mustRestore(t, r, res.snap, res.data)
			restored++
		}
	}
	if restored != 9 {
		t.Fatalf("%d snapshots left, want 8 stable and 1 churn", restored)
	}
}

// TestPruneDuplicateCopies: two snapshots running at the same time store
// the same new chunks twice, one as deltas of the previous night and one
// whole. Whichever copy prune keeps stays restorable: the bases of every
// delta copy of a used blob count as used.
func TestPruneDuplicateCopies(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	prInit(t, be)
	a, b := prOpen(t, be), prOpen(t, be)
	d := newPrDump(11, 1<<20)
	night1 := d.bytes()
	s1 := prSnap(t, a, "n", 1, night1)
	for _, r := range []*repo.Repository{a, b} {
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
	}
	d.edit(4)
	night2 := d.bytes()
	sb := prSnap(t, b, "n", 2, night2) // deltas of night 1
	if sb.AddedDeltas == 0 {
		t.Fatal("no deltas")
	}
	sa, err := a.SnapshotStream(ctx, bytes.NewReader(night2), repo.SnapshotOptions{Name: "m", Host: "db1", NoDelta: true, Time: prEpoch.AddDate(0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if sa.AddedBlobs < sb.AddedDeltas {
		t.Fatalf("the second snapshot stored %d blobs, want the %d new chunks again", sa.AddedBlobs, sb.AddedDeltas)
	}
	for _, forget := range [][]crypt.ID{{s1.ID}, {sb.ID}} {
		r := prOpen(t, be)
		err := prLocked(t, r, true, func() error { return r.RemoveSnapshots(ctx, forget) })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := prPrune(t, prOpen(t, be), repo.PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		r = prOpen(t, be)
		if rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
			t.Fatalf("check: %v %+v", err, rep)
		}
		mustRestore(t, r, sa, night2)
	}
}
