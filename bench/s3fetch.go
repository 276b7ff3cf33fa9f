package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store/s3"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3FetchDepth is what loading one data blob costs in this process, from
// the local and from the S3 repository of the S3 benchmark's last round,
// for blobs of one delta chain depth: the cost of a base fetch when the
// base cache misses. The same blobs are loaded from both repositories.
type s3FetchDepth struct {
	Depth    int     `json:"depth"`
	Sampled  int     `json:"sampled"`
	RawBytes int64   `json:"raw_bytes"`
	LocalUS  float64 `json:"local_us_per_blob"`
	S3US     float64 `json:"s3_us_per_blob"`
}

// benchS3Fetch loads a seeded sample of up to perDepth data blobs of each
// chain depth, one at a time, from the local repository at localPath and
// from the S3 repository at url (with the server's keys), and times them.
// The local repository's packs are in the page cache: moments ago it was
// written and restored.
func benchS3Fetch(ctx context.Context, localPath, url string, gw *versitygw, perDepth int, seed uint64) ([]s3FetchDepth, error) {
	rl, err := openRepo(ctx, localPath)
	if err != nil {
		return nil, fmt.Errorf("open the local repository: %w", err)
	}
	defer rl.Close()
	cfg, err := s3.ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Credentials = credentials.NewStaticV4(gw.access, gw.secret, "")
	be, err := s3.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rs, err := repo.Open(ctx, be, []byte(password), repo.OpenOptions{})
	if err != nil {
		return nil, fmt.Errorf("open the S3 repository: %w", err)
	}
	defer rs.Close()
	if err := rs.LoadIndex(ctx); err != nil {
		return nil, errors.Join(err, rs.Close())
	}

	// Blobs both repositories hold, by their depth in the S3 one.
	byDepth, _, err := dataBlobsByDepth(rs, rl.Index().Has)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x53f))
	var out []s3FetchDepth
	var buf []byte
	for d := 0; d <= 64; d++ {
		if len(byDepth[d]) == 0 {
			continue
		}
		sample := sampleOf(rng, byDepth[d], perDepth)
		fd := s3FetchDepth{Depth: d, Sampled: len(sample)}
		for _, id := range sample { // untimed: the local packs into the page cache
			if buf, err = rl.LoadBlob(ctx, pack.DataBlob, id, buf); err != nil {
				return out, err
			}
			fd.RawBytes += int64(len(buf))
		}
		for i, r := range []*repo.Repository{rl, rs} {
			start := time.Now()
			for _, id := range sample {
				if buf, err = r.LoadBlob(ctx, pack.DataBlob, id, buf); err != nil {
					return out, err
				}
			}
			us := 1e6 * time.Since(start).Seconds() / float64(len(sample))
			if i == 0 {
				fd.LocalUS = us
			} else {
				fd.S3US = us
			}
		}
		out = append(out, fd)
	}
	return out, nil
}

func printS3Fetch(w io.Writer, depths []s3FetchDepth) {
	if len(depths) == 0 {
		return
	}
	fmt.Fprintln(w, "base fetch (LoadBlob of one data blob in this process, the same blobs from both repositories of the last round;")
	fmt.Fprintln(w, "the cost of a delta base when the base cache misses; depth d: d+1 ranged reads, d delta decodes):")
	tw := newTable(w)
	fmt.Fprintln(tw, "chain depth\tsampled\tavg size\tlocal µs/blob\tlocal MB/s\tS3 µs/blob\tS3 MB/s")
	for _, d := range depths {
		avg := d.RawBytes / int64(max(d.Sampled, 1))
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.0f\t%.0f\t%.0f\t%.0f\n", d.Depth, d.Sampled, formatSize(avg),
			d.LocalUS, float64(avg)/max(d.LocalUS, 1e-9), d.S3US, float64(avg)/max(d.S3US, 1e-9))
	}
	tw.Flush()
}
