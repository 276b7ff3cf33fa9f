package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/store"
)

// Format identifiers recorded in the config. Part of the on-disk format.
const (
	FormatVersion   = 1
	HashAlgorithm   = "blake3-256-keyed"
	CipherAlgorithm = "aes-256-gcm-subkey-v1"
	Compression     = "zstd"
	DefaultPackSize = 16 << 20
	minPackSize     = 1 << 20
	maxPackSize     = 512 << 20
)

// Caps on decoded sizes of sealed files; untrusted input never allocates more.
const (
	maxConfigSize   = 1 << 20
	maxSnapshotSize = 16 << 20
	maxIndexSize    = 1 << 30
	// maxBlobDecode caps what one blob may decompress to: far above the
	// largest chunk any valid chunker config produces (64 MiB).
	maxBlobDecode = 128 << 20
)

// Config is the repository configuration stored (sealed) in the config file.
type Config struct {
	Version     int          `json:"version"`
	ID          crypt.ID     `json:"id"`
	Hash        string       `json:"hash"`
	Cipher      string       `json:"cipher"`
	Compression string       `json:"compression"`
	Chunker     chunk.Params `json:"chunker"`
	PackSize    int64        `json:"pack_size"`
	Delta       DeltaConfig  `json:"delta"`
}

// DeltaConfig says whether new chunks may be stored as deltas against the
// matching chunk of the previous snapshot (FORMAT.md §5).
type DeltaConfig struct {
	Enabled   bool   `json:"enabled"`
	Algorithm string `json:"algorithm,omitempty"`
	MaxDepth  int    `json:"max_depth,omitempty"`
}

// Delta defaults, chosen by measurement (README, "Deltas").
const (
	DeltaAlgorithm  = "bk-delta-v1"
	DefaultMaxDepth = 8
)

func (c *Config) validate() error {
	if c.Version > FormatVersion {
		return fmt.Errorf("repository format %d, this bk reads up to %d: %w", c.Version, FormatVersion, ErrNewerFormat)
	}
	if c.Version < 1 {
		return corrupt(nil, "config: version %d", c.Version)
	}
	if c.Hash != HashAlgorithm || c.Cipher != CipherAlgorithm || c.Compression != Compression {
		return corrupt(nil, "config: unknown algorithms %q/%q/%q", c.Hash, c.Cipher, c.Compression)
	}
	if c.PackSize < minPackSize || c.PackSize > maxPackSize {
		return corrupt(nil, "config: pack size %d", c.PackSize)
	}
	if err := c.Chunker.Validate(); err != nil {
		return corrupt(err, "config: chunker")
	}
	if c.Delta.Enabled && (c.Delta.Algorithm != DeltaAlgorithm || c.Delta.MaxDepth < 1 || c.Delta.MaxDepth > maxChainDecode) {
		return corrupt(nil, "config: delta %q with depth %d", c.Delta.Algorithm, c.Delta.MaxDepth)
	}
	return nil
}

// InitOptions tune a new repository.
type InitOptions struct {
	KDF      crypt.KDFParams // zero means crypt.DefaultKDF
	PackSize int64           // zero means DefaultPackSize
	Chunker  *chunk.Params   // nil means fresh random parameters
	// ChunkSize is the average chunk size, a power of two (zero means
	// chunk.DefaultAverageBits); chunks range from a quarter of it to eight
	// times it. Ignored when Chunker is set.
	ChunkSize int
	NoDelta   bool   // store new chunks whole, never as deltas
	Host      string // recorded in the key file
	Username  string
}

// OpenOptions tune opening a repository.
type OpenOptions struct {
	Host     string // recorded in locks and key files
	Username string
	// Workers bounds CPU-parallel work (zero means GOMAXPROCS).
	Workers int
	// CacheDir, when set, holds a local cache of each source's latest
	// chunks (sealed) under CacheDir/<repository ID>/bases, so delta bases
	// are read locally instead of from the repository. Useful for remote
	// repositories; safe to delete.
	CacheDir string
	// CacheMax bounds the cache of one source (zero means 4 GiB).
	CacheMax int64
	// ReadAhead bounds the plaintext a restore fetches ahead of what it
	// writes (zero means 16 MiB). Remote repositories want more, to keep
	// several ranged reads in flight.
	ReadAhead int64
}

// Repository is an open bk repository. Its methods are safe for concurrent use.
type Repository struct {
	be      store.Backend
	key     *crypt.MasterKey
	keyName string
	cfg     Config
	host    string
	user    string
	workers int
	opts    OpenOptions

	enc      *zstd.Encoder
	dec      *zstd.Decoder // sealed files (indexes can be large)
	blobDec  *zstd.Decoder // blobs, whose size the chunker bounds
	progBufs sync.Pool     // *[]byte for delta programs
	baseBufs sync.Pool     // *[]byte for decoded delta bases

	idxOnce sync.Mutex
	idx     *index.Index
	idxDone bool
	// held and heldExcl count the locks this Repository holds (guarded by
	// idxOnce). Taking the first one makes the next LoadIndex read the index
	// again, since another process may have pruned while none was held, and
	// starts a new lockEpoch.
	held, heldExcl int
	lockEpoch      uint64
}

// Init creates a repository in an empty backend and returns it open.
func Init(ctx context.Context, be store.Backend, password []byte, opts InitOptions) (*Repository, error) {
	if len(password) == 0 {
		return nil, errors.New("init: empty password")
	}
	if _, err := be.Stat(ctx, store.Handle{Type: store.ConfigFile}); err == nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), ErrExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	for _, t := range []store.FileType{store.KeyFile, store.SnapshotFile, store.IndexFile, store.PackFile} {
		found := false
		err := be.List(ctx, t, func(store.FileInfo) error { found = true; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return nil, fmt.Errorf("init %s: list %s: %w", be.Location(), t, err)
		}
		if found {
			return nil, fmt.Errorf("init %s: holds %s files: %w", be.Location(), t, ErrExists)
		}
	}
	mk, err := crypt.NewMasterKey()
	if err != nil {
		return nil, err
	}
	cfg := Config{Version: FormatVersion, Hash: HashAlgorithm, Cipher: CipherAlgorithm,
		Compression: Compression, PackSize: opts.PackSize}
	if cfg.PackSize == 0 {
		cfg.PackSize = DefaultPackSize
	}
	cfg.ID, err = randomID()
	if err != nil {
		return nil, err
	}
	if opts.Chunker != nil {
		cfg.Chunker = *opts.Chunker
	} else if cfg.Chunker, err = chunk.NewParams(); err != nil {
		return nil, fmt.Errorf("init: chunker parameters: %w", err)
	} else if opts.ChunkSize != 0 {
		bits := 0
		for 1<<bits < opts.ChunkSize {
			bits++
		}
		if 1<<bits != opts.ChunkSize || bits < 16 || bits > 23 {
			return nil, fmt.Errorf("init: chunk size %d must be a power of two from 64 KiB to 8 MiB", opts.ChunkSize)
		}
		cfg.Chunker.AverageBits = bits
		cfg.Chunker.MinSize = uint(opts.ChunkSize / 4)
		cfg.Chunker.MaxSize = uint(opts.ChunkSize * 8)
	}
	if !opts.NoDelta {
		cfg.Delta = DeltaConfig{Enabled: true, Algorithm: DeltaAlgorithm, MaxDepth: DefaultMaxDepth}
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	r, err := newRepository(be, mk, cfg, OpenOptions{Host: opts.Host, Username: opts.Username})
	if err != nil {
		return nil, err
	}
	kdf := opts.KDF
	if kdf == (crypt.KDFParams{}) {
		kdf = crypt.DefaultKDF
	}
	// The key comes first: a config without a key could never be opened,
	// while a key without a config is just an unfinished init.
	if r.keyName, err = r.saveKey(ctx, password, kdf); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	sealed, err := r.sealFile("config", plain, false)
	if err != nil {
		return nil, err
	}
	if err := be.Put(ctx, store.Handle{Type: store.ConfigFile}, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		return nil, fmt.Errorf("init: save config: %w", err)
	}
	return r, nil
}

// Open opens the repository in be with password. A missing repository matches
// store.ErrNotFound, a password that opens no key crypt.ErrWrongPassword.
func Open(ctx context.Context, be store.Backend, password []byte, opts OpenOptions) (*Repository, error) {
	raw, err := store.ReadAll(ctx, be, store.Handle{Type: store.ConfigFile})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no repository at %s: %w", be.Location(), store.ErrNotFound)
		}
		return nil, fmt.Errorf("open %s: read config: %w", be.Location(), err)
	}
	mk, keyName, err := openKey(ctx, be, password)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, mk, Config{}, opts)
	if err != nil {
		return nil, err
	}
	r.keyName = keyName
	plain, err := r.openFile("config", raw, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	if err := json.Unmarshal(plain, &r.cfg); err != nil {
		return nil, corrupt(err, "config")
	}
	if err := r.cfg.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func newRepository(be store.Backend, mk *crypt.MasterKey, cfg Config, opts OpenOptions) (*Repository, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Fastest level: compression is the largest cost of a snapshot, and the
	// default level gains 3% of size for 50% more CPU on dump text (make
	// bench). No zstd checksum: every blob is authenticated by GCM and
	// verified against its keyed hash.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(workers), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxIndexSize), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	blobDec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxBlobDecode), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	r := &Repository{be: be, key: mk, cfg: cfg, host: opts.Host, user: opts.Username,
		workers: workers, opts: opts, enc: enc, dec: dec, blobDec: blobDec}
	r.progBufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	r.baseBufs.New = func() any { b := make([]byte, 0, 1<<20); return &b }
	return r, nil
}

// Close releases resources. It does not close the backend.
func (r *Repository) Close() error {
	r.dec.Close()
	r.blobDec.Close()
	return r.enc.Close()
}

// Config returns the repository configuration.
func (r *Repository) Config() Config { return r.cfg }

// Backend returns the storage backend.
func (r *Repository) Backend() store.Backend { return r.be }

// KeyName returns the name of the key file that opened the repository.
func (r *Repository) KeyName() string { return r.keyName }

// LoadIndex reads every index file into memory, once. Later calls are free.
// Index files that another index file supersedes are left out (FORMAT.md §8).
func (r *Repository) LoadIndex(ctx context.Context) error {
	r.idxOnce.Lock()
	defer r.idxOnce.Unlock()
	if r.idxDone {
		return nil
	}
	set, err := r.readIndexes(ctx, nil, false)
	if err != nil {
		return err
	}
	r.idx, r.idxDone = set.idx, true
	return nil
}

// indexSet is what readIndexes found.
type indexSet struct {
	idx *index.Index
	// names lists every index file, used or not.
	names []string
	// superseded maps each index file left out to one that supersedes it.
	superseded map[string]string
	// bad lists the index files that failed to load (tolerant reads only).
	bad map[string]bool
	// packs summarises every pack the used files list (with summarize only).
	packs map[crypt.ID]*packSummary
}

// readIndexes reads the index files into a new in-memory index, leaving out
// the files that another file supersedes. With bad nil, a file that fails to
// load fails the read; otherwise bad is called for it (one call at a time)
// and it is left out. With summarize, the packs the files list are
// summarised for check.
func (r *Repository) readIndexes(ctx context.Context, bad func(name string, err error), summarize bool) (*indexSet, error) {
	names, err := listNames(ctx, r.be, store.IndexFile)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	set := &indexSet{names: names, superseded: map[string]string{}, bad: map[string]bool{}}
	var mu sync.Mutex
	load := func(names []string) (map[string][]crypt.ID, error) {
		set.idx, set.packs = index.New(), nil
		if summarize {
			set.packs = map[crypt.ID]*packSummary{}
		}
		supersedes := map[string][]crypt.ID{}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(4)
		for _, name := range names {
			g.Go(func() error {
				f, err := r.LoadIndexFile(gctx, name)
				if err == nil {
					err = set.idx.AddFile(f)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if bad == nil || ctx.Err() != nil {
						return err
					}
					set.bad[name] = true
					bad(name, err)
					return nil
				}
				supersedes[name] = f.Supersedes
				if summarize {
					summarizeIndex(set.packs, name, f)
				}
				return nil
			})
		}
		return supersedes, g.Wait()
	}
	supersedes, err := load(names)
	if err != nil {
		return nil, err
	}
	for name, sup := range supersedes {
		for _, old := range sup {
			if _, ok := supersedes[old.String()]; ok && old.String() != name {
				set.superseded[old.String()] = name
			}
		}
	}
	if len(set.superseded) > 0 {
		// Rare: a repair or prune was interrupted before it deleted the
		// files it replaced. Read again without them.
		var keep []string
		for _, name := range names {
			if set.superseded[name] == "" && !set.bad[name] {
				keep = append(keep, name)
			}
		}
		if _, err := load(keep); err != nil {
			return nil, err
		}
	}
	set.idx.Compact()
	return set, nil
}

// Index returns the in-memory index (LoadIndex must have been called).
func (r *Repository) Index() *index.Index { return r.idx }

// LoadIndexFile reads and decodes one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, name string) (*index.File, error) {
	plain, err := r.loadFile(ctx, store.Handle{Type: store.IndexFile, Name: name}, "index", maxIndexSize)
	if err != nil {
		return nil, err
	}
	f, err := index.Decode(plain)
	if err != nil {
		return nil, corrupt(err, "index %s", name)
	}
	return f, nil
}

// saveIndex writes one index file and returns its name.
func (r *Repository) saveIndex(ctx context.Context, f *index.File) (crypt.ID, error) {
	return r.saveFile(ctx, store.IndexFile, "index", index.Encode(f), true)
}

var errStop = errors.New("stop")

func randomID() (crypt.ID, error) {
	s, err := crypt.NewSalt()
	return crypt.ID(s), err
}
