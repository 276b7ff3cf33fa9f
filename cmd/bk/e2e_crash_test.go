package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EKillDuringSnapshot SIGKILLs bk while it stores a large stream, at
// several moments, and checks that the repository still holds exactly the
// earlier snapshots and accepts new ones (FORMAT.md §10).
func TestE2EKillDuringSnapshot(t *testing.T) {
	t.Parallel()
	r := newRepo(t, "--pack-size", "1048576")
	want := map[string][]byte{}
	for i, size := range []int{3 << 20, 2<<20 + 5} {
		data := randomData(uint64(900+i), size)
		want[r.snapshot(data, "--name", fmt.Sprintf("good-%d", i)).ID] = data
	}

	// killAfter is the number of new pack files to wait for; 0 kills as soon
	// as the lock is taken, before any pack is written.
	for i, killAfter := range []int{0, 1, 4, 10} {
		t.Run(fmt.Sprintf("after %d packs", killAfter), func(t *testing.T) {
			r := r.with(t)
			packsBefore := len(r.files("data"))
			locksBefore := len(r.files("locks"))

			rd, wr, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			p := r.start(rd, "snapshot", "--stdin", "--name", "big")
			rd.Close()
			stop := make(chan struct{})
			fed := make(chan int64, 1)
			go feedText(wr, uint64(950+i), 200<<20, stop, fed)

			waitFor(t, 30*time.Second, fmt.Sprintf("%d new pack files", killAfter), func() bool {
				if p.exited() {
					t.Fatalf("bk exited before it was killed\n%s", p.wait())
				}
				return len(r.files("locks")) > locksBefore && len(r.files("data")) >= packsBefore+killAfter
			})
			p.kill()
			res := p.wait()
			close(stop)
			n := <-fed
			if res.code != -1 {
				t.Fatalf("want bk killed by SIGKILL\n%s", res)
			}
			t.Logf("killed after %d new packs, %d bytes fed", len(r.files("data"))-packsBefore, n)

			ids := r.snapshotIDs()
			if !slices.Equal(ids, slices.Sorted(mapKeys(want))) {
				t.Fatalf("after the kill, snapshots %v, want %v", ids, slices.Sorted(mapKeys(want)))
			}
			for id, data := range want {
				r.wantRestore(id, data)
			}
			r.run(nil, "restore", "latest", "--name", "big", "--stdout").wantFail(t, exitFailure, "no snapshot matches")

			// The repository takes new snapshots, including one that shares
			// chunks with the packs the killed process left unindexed.
			data := randomData(uint64(980+i), 1<<20+i)
			id := r.snapshot(data, "--name", "after-kill").ID
			r.wantRestore(id, data)
			want[id] = data
		})
	}
}

// feedText writes up to n bytes of pseudo-random text to w in small pieces,
// until stop is closed or a write fails (the reader died), then closes w and
// sends the number of bytes written on fed.
func feedText(w *os.File, seed uint64, n int64, stop <-chan struct{}, fed chan<- int64) {
	defer w.Close()
	const alphabet = "abcdefghijklmnopqrstuvwxyz ,.;      \n"
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	rng := rand.NewChaCha8(s)
	buf := make([]byte, 128<<10)
	var written int64
	defer func() { fed <- written }()
	for written < n {
		_, _ = rng.Read(buf)
		for i, b := range buf {
			buf[i] = alphabet[int(b)%len(alphabet)]
		}
		k, err := w.Write(buf)
		written += int64(k)
		if err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(500 * time.Microsecond):
		}
	}
}

// mapKeys yields the keys of m.
func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestE2EDiskFull fills a small tmpfs: the failing snapshot reports the
// cause, saves nothing and cleans up; the earlier snapshot still restores.
func TestE2EDiskFull(t *testing.T) {
	t.Parallel()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=24m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})

	r := newRepoAt(t, filepath.Join(mnt, "repo"))
	small := randomData(1000, 4<<20)
	id := r.snapshot(small, "--name", "small").ID

	big := randomData(1001, 64<<20)
	res := r.run(big, "snapshot", "--stdin", "--name", "big")
	res.wantFail(t, exitFailure, "no snapshot saved", "no space left on device")

	if ids := r.snapshotIDs(); !slices.Equal(ids, []string{id}) {
		t.Fatalf("after the failure, snapshots %v, want only %s", ids, id[:8])
	}
	r.wantRestore(id, small)
	if locks := r.files("locks"); len(locks) != 0 {
		t.Errorf("the failed snapshot left its lock: %v", locks)
	}
	if tmp := tempFiles(t, r.path); len(tmp) != 0 {
		t.Errorf("failed writes left temporary files: %v", tmp)
	}
	// A snapshot that fits still succeeds on the almost full disk.
	tiny := randomData(1002, 64<<10)
	r.wantRestore(r.snapshot(tiny, "--name", "tiny").ID, tiny)
}

// tempFiles lists the names of temporary files (".tmp-*") under dir.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// indexDoc is the output of `bk cat index`.
type indexDoc struct {
	ID    string `json:"id"`
	Packs []struct {
		ID    string `json:"id"`
		Size  int64  `json:"size"`
		Blobs []struct {
			Type   string `json:"type"`
			ID     string `json:"id"`
			Offset int64  `json:"offset"`
			Length int64  `json:"length"`
		} `json:"blobs"`
	} `json:"packs"`
}

// TestE2ETamperedPack flips one bit inside a stored blob and checks that
// restore fails naming the pack and the blob, and leaves no restored file.
func TestE2ETamperedPack(t *testing.T) {
	t.Parallel()
	for _, blobType := range []string{"data", "tree"} {
		t.Run(blobType, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t, "--pack-size", "1048576")
			data := randomData(1100, 3<<20)
			r.snapshot(data, "--name", "db")

			// Find a blob of the wanted type through the index.
			var packID, blobID string
			var off int64
			for _, name := range r.files("index") {
				var idx indexDoc
				decodeJSON(t, r.must(nil, "cat", "index", name).stdout, &idx)
				for _, p := range idx.Packs {
					for _, b := range p.Blobs {
						if b.Type == blobType && packID == "" {
							packID, blobID, off = p.ID, b.ID, b.Offset+b.Length/2
						}
					}
				}
			}
			if packID == "" {
				t.Fatalf("no %s blob in the index", blobType)
			}
			path := r.packPath(packID)
			raw := readFile(t, path)
			raw[off] ^= 0x04
			writeFile(t, path, raw)

			res := r.run(nil, "restore", "latest", "--stdout")
			res.wantFail(t, exitFailure, "restore failed", "pack "+packID, "blob "+blobID, "corrupt")

			target := filepath.Join(t.TempDir(), "out")
			res = r.run(nil, "restore", "latest", "--target", target)
			res.wantFail(t, exitFailure, "pack "+packID, "blob "+blobID)
			entries, err := os.ReadDir(target)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Fatalf("a failed restore left files in the target: %v", entries)
			}
		})
	}
}
