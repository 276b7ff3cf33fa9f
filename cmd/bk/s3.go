package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/cache"
	"github.com/bk-backup/bk/store/s3"
)

// s3Flags are the options of S3 repositories.
type s3Flags struct {
	region, lookup, caFile, storageClass string
	timeout                              time.Duration
}

func (f *s3Flags) register(pf *pflag.FlagSet) {
	pf.StringVar(&f.region, "s3-region", os.Getenv("BK_S3_REGION"), "S3 region (env BK_S3_REGION; default: ask the server)")
	pf.StringVar(&f.lookup, "s3-lookup", os.Getenv("BK_S3_LOOKUP"), `S3 bucket addressing: "path", "dns" (virtual host) or "auto" (env BK_S3_LOOKUP)`)
	pf.StringVar(&f.caFile, "s3-ca-file", os.Getenv("BK_S3_CA_FILE"), "PEM file of the CA that signed the S3 server's certificate (env BK_S3_CA_FILE)")
	pf.StringVar(&f.storageClass, "s3-storage-class", os.Getenv("BK_S3_STORAGE_CLASS"), "S3 storage class for data packs, e.g. STANDARD_IA (env BK_S3_STORAGE_CLASS)")
	timeout := s3.DefaultRetryDeadline
	if d, err := time.ParseDuration(os.Getenv("BK_S3_TIMEOUT")); err == nil && d > 0 {
		timeout = d
	}
	pf.DurationVar(&f.timeout, "s3-timeout", timeout, "give up an S3 operation whose transient errors (5xx, throttling, timeouts, resets) persist this long (env BK_S3_TIMEOUT)")
}

// s3Backend opens (or, with create, prepares: the bucket is created when
// missing) the S3 repository at loc. Credentials come from the AWS
// environment variables, the shared credentials file (AWS_PROFILE) or the
// instance metadata; never from the URL. Unless --no-cache, snapshot, index
// and key files are cached locally, so opening costs a listing plus what is
// new.
func (a *app) s3Backend(ctx context.Context, loc string, create bool) (store.Backend, error) {
	cfg, err := s3.ParseURL(loc)
	if err != nil {
		return nil, usageError{err}
	}
	cfg.Region, cfg.CAFile, cfg.StorageClass, cfg.RetryDeadline = a.s3.region, a.s3.caFile, a.s3.storageClass, a.s3.timeout
	if a.s3.lookup != "" {
		cfg.Lookup = a.s3.lookup
	}
	var be *s3.Backend
	if create {
		be, err = s3.Create(ctx, cfg)
	} else {
		be, err = s3.Open(ctx, cfg)
		if errors.Is(err, store.ErrNotFound) {
			return nil, noRepo(err)
		}
	}
	if err != nil {
		return nil, err
	}
	if a.noCache || a.cacheRoot() == "" {
		return be, nil
	}
	dir := filepath.Join(a.cacheRoot(), "meta", crypt.Hash([]byte(be.Location())).String()[:16])
	c, err := cache.New(be, dir, func(h store.Handle, data []byte) bool { return crypt.Hash(data).String() == h.Name })
	if err != nil {
		return be, nil // no cache, still a working repository
	}
	return c, nil
}
