package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store/local"
)

// fetchResult is what loading one data blob costs, in this process, by the
// depth of the blob's delta chain. The delta encoder loads the base of
// every new chunk this way, so depth 0 is the cost of a base stored whole
// and depth d costs d+1 reads and d delta decodes.
type fetchResult struct {
	Repo   string       `json:"repo"`
	Blobs  int          `json:"data_blobs"`
	Depths []fetchDepth `json:"depths"`
	// Cold says whether the cold column was measured (page cache evicted
	// for the repository's packs before every load).
	Cold  bool   `json:"cold"`
	Error string `json:"error,omitempty"`
}

// fetchDepth is the cost of loading blobs at one chain depth.
type fetchDepth struct {
	Depth    int     `json:"depth"`
	Blobs    int     `json:"blobs"`   // data blobs at this depth in the repository
	Sampled  int     `json:"sampled"` // of which were loaded
	RawBytes int64   `json:"raw_bytes"`
	WarmUS   float64 `json:"warm_us_per_blob"`
	WarmMBps float64 `json:"warm_mbps"`
	ColdUS   float64 `json:"cold_us_per_blob,omitempty"`
	ColdMBps float64 `json:"cold_mbps,omitempty"`
}

// openRepo opens a bench repository in this process with its index loaded.
func openRepo(ctx context.Context, path string) (*repo.Repository, error) {
	be, err := local.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, be, []byte(password), repo.OpenOptions{})
	if err != nil {
		return nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, errors.Join(err, r.Close())
	}
	return r, nil
}

// streamChunks returns the data blobs of the stream under tree root, in
// stream order.
func streamChunks(ctx context.Context, r *repo.Repository, root crypt.ID) ([]repo.TreeEntry, error) {
	var ids []repo.TreeEntry
	var walk func(id crypt.ID) error
	walk = func(id crypt.ID) error {
		plain, err := r.LoadBlob(ctx, pack.TreeBlob, id, nil)
		if err != nil {
			return err
		}
		level, entries, err := repo.DecodeTree(plain)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if level == 0 {
				ids = append(ids, e)
			} else if err := walk(e.ID); err != nil {
				return err
			}
		}
		return nil
	}
	return ids, walk(root)
}

// depths computes the delta chain depth of blobs from the index, memoised.
type depths struct {
	r    *repo.Repository
	memo map[crypt.ID]int
}

func newDepths(r *repo.Repository) *depths { return &depths{r: r, memo: make(map[crypt.ID]int)} }

func (d *depths) of(id crypt.ID) (int, error) {
	if n, ok := d.memo[id]; ok {
		return n, nil
	}
	var path []crypt.ID
	n, cur := 0, id
	for {
		if k, ok := d.memo[cur]; ok {
			n = k
			break
		}
		loc, ok := d.r.Index().Lookup(cur)
		if !ok {
			return 0, fmt.Errorf("blob %s is not in the index", cur.Short())
		}
		path = append(path, cur)
		if loc.Entry.Enc != pack.DeltaZstd {
			n = 0
			d.memo[cur] = 0
			path = path[:len(path)-1]
			break
		}
		if len(path) > 64 {
			return 0, fmt.Errorf("blob %s: delta chain longer than 64", id.Short())
		}
		cur = loc.Entry.Base
	}
	for i := len(path) - 1; i >= 0; i-- {
		n++
		d.memo[path[i]] = n
	}
	return d.memo[id], nil
}

// dataBlobsByDepth groups the data blobs of rp for which keep (nil: all)
// returns true by their delta chain depth, each group sorted by ID, and
// returns how many there are.
func dataBlobsByDepth(rp *repo.Repository, keep func(crypt.ID) bool) (map[int][]crypt.ID, int, error) {
	var ids []crypt.ID
	rp.Index().Each(func(loc index.Location) {
		if loc.Entry.Type == pack.DataBlob && (keep == nil || keep(loc.Entry.ID)) {
			ids = append(ids, loc.Entry.ID)
		}
	})
	slices.SortFunc(ids, func(a, b crypt.ID) int { return slices.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	byDepth := map[int][]crypt.ID{}
	dp := newDepths(rp)
	for _, id := range ids {
		d, err := dp.of(id)
		if err != nil {
			return nil, len(ids), err
		}
		byDepth[d] = append(byDepth[d], id)
	}
	return byDepth, len(ids), nil
}

// sampleOf returns a seeded random sample of up to n of ids.
func sampleOf(rng *rand.Rand, ids []crypt.ID, n int) []crypt.ID {
	sample := slices.Clone(ids)
	rng.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	return sample[:min(n, len(sample))]
}

// benchFetch loads a seeded sample of up to perDepth data blobs of every
// chain depth from the repository, one at a time, with a warm page cache and
// (on Linux) with the packs evicted from it before every load.
func benchFetch(ctx context.Context, rp *repo.Repository, path string, perDepth int, seed uint64) (*fetchResult, error) {
	res := &fetchResult{Repo: filepath.Base(path)}
	byDepth, n, err := dataBlobsByDepth(rp, nil)
	res.Blobs = n
	if err != nil {
		return res, err
	}
	packs, err := packFiles(path)
	if err != nil {
		return res, err
	}
	res.Cold = evict(packs) == nil
	rng := rand.New(rand.NewPCG(seed, 0xfe7c4))
	var buf []byte
	for d := 0; d <= 64; d++ {
		all := byDepth[d]
		if len(all) == 0 {
			continue
		}
		sample := sampleOf(rng, all, perDepth)
		fd := fetchDepth{Depth: d, Blobs: len(all), Sampled: len(sample)}
		// Warm: every pack was read or written moments ago; one untimed
		// pass makes sure the sample's chains are in the page cache.
		for _, id := range sample {
			if buf, err = rp.LoadBlob(ctx, pack.DataBlob, id, buf); err != nil {
				return res, err
			}
			fd.RawBytes += int64(len(buf))
		}
		start := time.Now()
		for _, id := range sample {
			if buf, err = rp.LoadBlob(ctx, pack.DataBlob, id, buf); err != nil {
				return res, err
			}
		}
		sec := time.Since(start).Seconds()
		fd.WarmUS, fd.WarmMBps = 1e6*sec/float64(len(sample)), mbps(fd.RawBytes, sec)
		if res.Cold {
			var cold time.Duration
			for _, id := range sample {
				if err := evict(packs); err != nil {
					return res, err
				}
				start := time.Now()
				if buf, err = rp.LoadBlob(ctx, pack.DataBlob, id, buf); err != nil {
					return res, err
				}
				cold += time.Since(start)
			}
			fd.ColdUS, fd.ColdMBps = 1e6*cold.Seconds()/float64(len(sample)), mbps(fd.RawBytes, cold.Seconds())
		}
		res.Depths = append(res.Depths, fd)
	}
	return res, nil
}

// packFiles lists the pack files of a local repository.
func packFiles(path string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(path, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	return out, err
}

func printFetch(w io.Writer, res *fetchResult) {
	if res == nil {
		return
	}
	fmt.Fprintf(w, "\n== Base fetch: LoadBlob of one data blob in this process, local repository %s (%d data blobs)\n", res.Repo, res.Blobs)
	if res.Error != "" {
		fmt.Fprintf(w, "FAILED: %s\n", firstLine(res.Error))
	}
	if len(res.Depths) == 0 {
		return
	}
	fmt.Fprintf(w, "depth 0 is a base stored whole; depth d is a delta chain: d+1 reads, d delta decodes, one hash check\n")
	tw := newTable(w)
	head := "chain depth\tblobs\tsampled\tavg size\twarm µs/blob\twarm MB/s"
	if res.Cold {
		head += "\tcold µs/blob\tcold MB/s"
	}
	fmt.Fprintln(tw, head)
	for _, d := range res.Depths {
		line := fmt.Sprintf("%d\t%d\t%d\t%s\t%.0f\t%.0f", d.Depth, d.Blobs, d.Sampled, formatSize(d.RawBytes/int64(max(d.Sampled, 1))),
			d.WarmUS, d.WarmMBps)
		if res.Cold {
			line += fmt.Sprintf("\t%.0f\t%.0f", d.ColdUS, d.ColdMBps)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if res.Cold {
		fmt.Fprintln(w, "warm: packs in the page cache; cold: the repository's packs evicted (posix_fadvise DONTNEED) before each load,")
		fmt.Fprintln(w, "so every read goes to the disk (a virtual disk here, which may have a cache of its own)")
	}
	fmt.Fprintln(w, "the encoder's worst base is at depth max_depth-1: a base at the cap is replaced by its chain root (depth 0)")
	fmt.Fprintln(w, "S3: see the S3 section, which loads the same blobs from a local and an S3 repository")
}
