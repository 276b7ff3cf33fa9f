package s3

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bk-backup/bk/store"
)

// DefaultPartSize is the part size of multipart uploads. Objects up to this
// size go up in a single PUT: that is every pack of the default pack size
// (16 MiB plus the chunk that crosses it), which saves the requests and the
// server-side assembly of a multipart upload.
const DefaultPartSize = 64 << 20

// The backoff between attempts: random in [0, min(backoffCap,
// backoffBase·2^(n-1))) after attempt n.
const (
	backoffBase = 100 * time.Millisecond
	backoffCap  = 10 * time.Second
)

// Backend stores a repository in an S3 bucket. It is safe for concurrent
// use.
type Backend struct {
	cfg       Config
	client    *minio.Client
	core      minio.Core
	transport *http.Transport // ours, to close idle connections; nil when cfg.Transport is set
	base      string          // key prefix of the repository: "" or "PREFIX/"
	secrets   *scrubber
	policy    retryPolicy
	partSize  uint64
	listPage  int // MaxKeys of a list request; 0: the server's default
	creds     *recordingProvider
	keysWork  atomic.Bool // a request has succeeded with the current keys
}

var _ store.Backend = (*Backend)(nil)

// Open connects to the repository at cfg in an existing bucket. A missing
// bucket is an error that matches store.ErrNotFound. Open does not look for
// a config file; a missing one shows up as store.ErrNotFound when it is read.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := newBackend(cfg)
	if err != nil {
		return nil, err
	}
	exists, err := b.bucketExists(ctx, "open")
	switch {
	case err != nil:
		return nil, err
	case !exists:
		return nil, b.wrapFinal("open", fmt.Errorf("bucket %q does not exist: %w", cfg.Bucket, store.ErrNotFound))
	}
	return b, nil
}

// Create connects to the repository at cfg and creates the bucket, in
// cfg.Region, when it is missing. If a repository already exists there (its
// config object does), Create returns an error that matches store.ErrExists;
// so it does when the prefix holds any other object: a repository is only
// created where nothing is. Create writes no config; the caller puts one.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := newBackend(cfg)
	if err != nil {
		return nil, err
	}
	exists, first, err := b.probe(ctx, "create")
	if err != nil {
		return nil, err
	}
	if !exists {
		err := b.retry(ctx, "create", "bucket "+cfg.Bucket, func(int) error {
			err := b.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
			if minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
				return nil // made by an earlier attempt or a concurrent Create
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	_, err = b.Stat(ctx, store.Handle{Type: store.ConfigFile})
	switch {
	case err == nil:
		return nil, b.wrapFinal("create", fmt.Errorf("a repository exists at %s: %w", b.Location(), store.ErrExists))
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	case first != "":
		return nil, b.wrapFinal("create", fmt.Errorf("%s holds objects that are not a bk repository (%s); choose an empty prefix: %w",
			b.Location(), first, store.ErrExists))
	}
	return b, nil
}

// newBackend checks cfg and makes the client; it does no I/O.
func newBackend(cfg Config) (*Backend, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("s3: invalid configuration: %w", err)
	}
	if cfg.Lookup == "" {
		cfg.Lookup = LookupAuto
	}
	if cfg.RetryDeadline == 0 {
		cfg.RetryDeadline = DefaultRetryDeadline
	}
	b := &Backend{
		cfg:      cfg,
		secrets:  &scrubber{},
		policy:   retryPolicy{deadline: cfg.RetryDeadline, base: backoffBase, cap: backoffCap},
		partSize: DefaultPartSize,
	}
	if cfg.Prefix != "" {
		b.base = cfg.Prefix + "/"
	}
	creds := cfg.Credentials
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	transport := cfg.Transport
	if transport == nil {
		tr, err := minio.DefaultTransport(cfg.Secure)
		if err != nil {
			return nil, fmt.Errorf("s3: %w", err)
		}
		if cfg.CAFile != "" {
			if err := trustCA(tr, cfg.CAFile); err != nil {
				return nil, fmt.Errorf("s3: %w", err)
			}
		}
		b.transport, transport = tr, tr
	}
	lookup := map[string]minio.BucketLookupType{
		LookupAuto: minio.BucketLookupAuto,
		LookupPath: minio.BucketLookupPath,
		LookupDNS:  minio.BucketLookupDNS,
	}[cfg.Lookup]
	b.creds = &recordingProvider{creds: creds, secrets: b.secrets}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.New(b.creds),
		Secure:       cfg.Secure,
		Transport:    transport,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   1, // the retries are ours
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %s", b.secrets.scrub(err.Error()))
	}
	b.client, b.core = client, minio.Core{Client: client}
	return b, nil
}

// trustCA makes tr trust the certificates in the PEM file, besides the
// system's.
func trustCA(tr *http.Transport, file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	if tr.TLSClientConfig == nil {
		return errors.New("CA file given for an http endpoint")
	}
	tr.TLSClientConfig.RootCAs = pool
	return nil
}

// bucketExists reports whether the bucket exists. It lists at most one key
// rather than asking with HEAD, because the error of a HEAD request has no
// body to say what went wrong (a bad signature, say).
func (b *Backend) bucketExists(ctx context.Context, op string) (bool, error) {
	exists, _, err := b.probe(ctx, op)
	return exists, err
}

// probe reports whether the bucket exists and the first key under the
// prefix, if any.
func (b *Backend) probe(ctx context.Context, op string) (exists bool, first string, err error) {
	noOwner := false
	err = b.retry(ctx, op, "bucket "+b.cfg.Bucket, func(int) error {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		exists, first = true, ""
		opts := minio.ListObjectsOptions{Prefix: b.base, MaxKeys: 1, Recursive: true, FetchOwner: &noOwner}
		for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, opts) {
			if notS3(obj.Err) {
				code := minio.ToErrorResponse(obj.Err).StatusCode
				return finalError{fmt.Errorf("%s answered HTTP %d without S3 headers: is it an S3 server, and is the URL right?",
					b.cfg.Endpoint, code)}
			}
			if minio.ToErrorResponse(obj.Err).Code == minio.NoSuchBucket {
				exists = false
				return nil
			}
			first = obj.Key
			return obj.Err
		}
		return nil
	})
	return exists, first, err
}

// notS3 reports whether a listing failed with a client error that carries
// no request ID. An S3 server answers every failed listing with an XML
// error that has one; a web server's 404 page or 405 does not. Throttling
// and timeouts (429, 408) may come from a proxy and are not judged.
func notS3(err error) bool {
	resp := minio.ToErrorResponse(err)
	return err != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout &&
		resp.RequestID == "" && resp.HostID == ""
}

// wrapFinal returns err, which is not the server's, as an operation's error.
func (b *Backend) wrapFinal(op string, err error) error {
	return b.opError(context.Background(), op, "", verdict{kind: final}, err, 1, 0)
}

// Location returns "s3:http(s)://HOST/BUCKET[/PREFIX]", never with
// credentials.
func (b *Backend) Location() string { return b.cfg.location() }

// rel returns the key of the file h names relative to the prefix: the
// path of the file in the repository layout. h must be valid.
func rel(h store.Handle) string {
	switch h.Type {
	case store.ConfigFile:
		return string(store.ConfigFile)
	case store.PackFile:
		return string(store.PackFile) + "/" + subdir(h.Name) + "/" + h.Name
	}
	return string(h.Type) + "/" + h.Name
}

// subdir returns the name of the data/ subfolder that holds the pack name.
func subdir(name string) string { return name[:min(2, len(name))] }

// Put uploads the file: in a single PUT up to the part size, as a multipart
// upload above it, with a checksum either way (see sendMD5). The object appears only
// when the upload completes. If rd yields more or fewer than size bytes, or
// fails, the put fails and the object is left as it was. On a transient
// error the put starts again after rd.Seek(0, io.SeekStart).
func (b *Backend) Put(ctx context.Context, h store.Handle, rd io.ReadSeeker, size int64) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("s3 put: %w", err)
	}
	what := rel(h)
	if size < 0 {
		return b.wrapFinal("put "+what, fmt.Errorf("invalid size %d", size))
	}
	opts := minio.PutObjectOptions{
		ContentType:    "application/octet-stream",
		SendContentMd5: b.sendMD5(),
		PartSize:       b.partSize,
	}
	if h.Type == store.PackFile {
		opts.StorageClass = b.cfg.StorageClass
	}
	key := b.base + what
	var prev error
	return b.retry(ctx, "put", what, func(n int) error {
		if n > 1 {
			if _, err := rd.Seek(0, io.SeekStart); err != nil {
				return finalError{fmt.Errorf("rewind the reader to retry after %s: %w", describe(prev), err)}
			}
		}
		sr := &sizedReader{r: rd, size: size}
		if size == 0 {
			if err := sr.checkEnd(nil); err != nil {
				return finalError{err}
			}
		}
		var body io.Reader = sr
		failed := func() error { return sr.err }
		if ra, ok := rd.(io.ReaderAt); ok {
			base, err := rd.Seek(0, io.SeekCurrent)
			if err != nil {
				return finalError{fmt.Errorf("find the reader's position: %w", err)}
			}
			sra := &sizedReaderAt{sizedReader: sr, ra: ra, base: base}
			// Parts may still be read after a failed PutObject returns.
			body, failed = sra, sra.failed
		}
		info, err := b.client.PutObject(ctx, b.cfg.Bucket, key, body, size, opts)
		switch {
		case failed() != nil:
			return finalError{failed()}
		case err != nil:
			prev = err
			if minio.ToErrorResponse(err).Code == "SignatureDoesNotMatch" && b.keysWork.Load() {
				// Over plain HTTP the body is signed chunk by chunk; with
				// keys that work, a mismatch means a damaged body.
				return bodyRejected{err}
			}
			return err
		case info.Size != size:
			// Not expected: the reader was checked. Do not leave a wrong object.
			_ = b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{})
			return finalError{fmt.Errorf("stored %d bytes, want %d", info.Size, size)}
		}
		return nil
	})
}

// sendMD5 says whether puts carry Content-MD5. Over plain HTTP with keys,
// minio-go signs the body itself (SigV4 streaming: a SHA-256 signature per
// 64 KiB chunk, which the server checks), so an MD5 would only repeat that
// check at the cost of a second pass over every pack. Over HTTPS the body
// is not signed, and without keys nothing is: then Content-MD5 is the
// checksum.
func (b *Backend) sendMD5() bool {
	return b.cfg.Secure || b.creds.anonymous.Load()
}

// sizedReader passes on the bytes of r and fails unless r yields exactly
// size bytes. It checks for surplus bytes as soon as it has passed on size
// bytes, so the upload fails before it completes.
type sizedReader struct {
	r    io.Reader
	size int64
	n    int64 // bytes passed on
	err  error // the first failure, returned from then on
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	left := s.size - s.n
	if left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	switch {
	case s.n == s.size:
		// Check for surplus bytes before passing on the last ones: a
		// reader such as io.ReadFull drops an error that comes with the
		// bytes it asked for.
		if err := s.checkEnd(err); err != nil {
			return 0, err
		}
		return n, nil
	case err == io.EOF:
		s.err = fmt.Errorf("reader yields %d bytes, want %d: %w", s.n, s.size, io.ErrUnexpectedEOF)
		return n, s.err
	case err != nil:
		s.err = fmt.Errorf("read: %w", err)
		return n, s.err
	}
	return n, nil
}

// sizedReaderAt is a sizedReader over a reader that can also read at an
// offset. minio-go reads such a body through an io.SectionReader, to hash
// it and then send it; any other body it first copies into a new buffer of
// the object's size, which for packs costs more CPU than the upload.
// ReadAt applies the same check as Read: the reader must hold exactly size
// bytes from base, its position when the put started. minio-go sends the
// parts of a multipart upload in parallel, so ReadAt may run concurrently;
// the first failure it records is guarded by mu (the caller reads err once
// PutObject has returned).
type sizedReaderAt struct {
	*sizedReader
	ra   io.ReaderAt
	base int64
	mu   sync.Mutex
}

// fail records err as the reader's failure unless one is recorded, and
// returns the recorded one.
func (s *sizedReaderAt) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// failed returns the recorded failure, or nil.
func (s *sizedReaderAt) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// ReadAt reads at off, which counts from the start of the underlying
// reader, as minio-go's Seek(0, io.SeekCurrent) and SectionReader do.
func (s *sizedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := s.failed(); err != nil {
		return 0, err
	}
	rel := off - s.base
	if rel < 0 {
		return 0, fmt.Errorf("read at %d, before the start %d", off, s.base)
	}
	if rel >= s.size {
		return 0, io.EOF
	}
	if left := s.size - rel; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := s.ra.ReadAt(p, off)
	switch {
	case n < len(p) && (err == nil || err == io.EOF):
		return n, s.fail(fmt.Errorf("reader yields %d bytes, want %d: %w", rel+int64(n), s.size, io.ErrUnexpectedEOF))
	case n < len(p):
		return n, s.fail(fmt.Errorf("read: %w", err))
	case rel+int64(n) == s.size:
		var one [1]byte
		if m, _ := s.ra.ReadAt(one[:], s.base+s.size); m > 0 {
			return 0, s.fail(fmt.Errorf("reader yields more than %d bytes", s.size))
		}
	}
	return n, nil
}

// Seek moves the underlying reader, so that Read goes on from there.
func (s *sizedReaderAt) Seek(offset int64, whence int) (int64, error) {
	seeker, ok := s.r.(io.Seeker)
	if !ok {
		return 0, errors.New("seek: the reader cannot seek")
	}
	pos, err := seeker.Seek(offset, whence)
	if err == nil {
		s.n = pos - s.base
	}
	return pos, err
}

// checkEnd checks that r has no bytes left; err is the error of r's last
// read.
func (s *sizedReader) checkEnd(err error) error {
	var one [1]byte
	for err == nil {
		var n int
		n, err = s.r.Read(one[:])
		if n > 0 {
			s.err = fmt.Errorf("reader yields more than %d bytes", s.size)
			return s.err
		}
	}
	if err != io.EOF {
		s.err = fmt.Errorf("read: %w", err)
		return s.err
	}
	return nil
}

// Get calls fn with a reader over the range: a ranged GET, whose reported
// object size is checked against the range. Only the request is retried;
// once fn has been called its errors, such as a connection reset while it
// reads, are returned (wrapped) without a retry.
func (b *Backend) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("s3 get: %w", err)
	}
	what := rel(h)
	if off < 0 || length < 0 {
		return b.wrapFinal("get "+what, fmt.Errorf("invalid range %d+%d", off, length))
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		_ = opts.SetRange(off, off+length-1)
	case off > 0:
		_ = opts.SetRange(off, 0)
	}
	key := b.base + what
	var (
		body io.ReadCloser
		n    int64
	)
	err := b.retry(ctx, "get", what, func(int) error {
		var err error
		body, n, err = b.get(ctx, key, off, length, opts)
		return err
	})
	if err != nil {
		return err
	}
	defer body.Close()
	if err := fn(&exactReader{r: body, left: n}); err != nil {
		return &opError{msg: b.secrets.scrub(fmt.Sprintf("s3 get %s: %v", what, err)), errs: []error{err}}
	}
	return nil
}

// get sends one GET for the range and returns the body, positioned at off,
// and the number of bytes the range covers.
func (b *Backend) get(ctx context.Context, key string, off, length int64, opts minio.GetObjectOptions) (io.ReadCloser, int64, error) {
	body, info, hdr, err := b.core.GetObject(ctx, b.cfg.Bucket, key, opts)
	if minio.ToErrorResponse(err).Code == "InvalidRange" {
		// The offset is at or past the end. Only a read of nothing at the
		// very end is fine; CheckRange tells.
		st, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return nil, 0, err
		}
		n, err := store.CheckRange(off, length, st.Size)
		if err != nil {
			return nil, 0, finalError{err}
		}
		if n != 0 {
			return nil, 0, fmt.Errorf("server refused range %d+%d of a %d-byte object", off, length, st.Size)
		}
		return io.NopCloser(bytes.NewReader(nil)), 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	size, start := info.Size, int64(0)
	if cr := hdr.Get("Content-Range"); cr != "" {
		if start, size, err = parseContentRange(cr); err != nil {
			body.Close()
			return nil, 0, finalError{err}
		}
	}
	n, err := store.CheckRange(off, length, size)
	if err != nil {
		body.Close()
		return nil, 0, finalError{err}
	}
	if start > off {
		body.Close()
		return nil, 0, finalError{fmt.Errorf("server returned a range from %d for a request from %d", start, off)}
	}
	if start < off { // the server ignored the range
		if _, err := io.CopyN(io.Discard, body, off-start); err != nil {
			body.Close()
			return nil, 0, err
		}
	}
	return body, n, nil
}

// parseContentRange parses "bytes FIRST-LAST/SIZE" and returns FIRST and
// SIZE.
func parseContentRange(s string) (start, size int64, err error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	rng, total, ok2 := strings.Cut(spec, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	if ok && ok2 && ok3 {
		start, err1 := strconv.ParseInt(first, 10, 64)
		size, err2 := strconv.ParseInt(total, 10, 64)
		if err1 == nil && err2 == nil {
			return start, size, nil
		}
	}
	return 0, 0, fmt.Errorf("invalid Content-Range %q", s)
}

// exactReader passes on left bytes of r; an early end of r is an error
// that matches io.ErrUnexpectedEOF.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		return n, nil
	case err == io.EOF:
		return n, fmt.Errorf("response body ended %d bytes early: %w", e.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// Stat returns the size of the file.
func (b *Backend) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return store.FileInfo{}, fmt.Errorf("s3 stat: %w", err)
	}
	what := rel(h)
	var size int64
	err := b.retry(ctx, "stat", what, func(int) error {
		info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.base+what, minio.StatObjectOptions{})
		size = info.Size
		return err
	})
	if err != nil {
		return store.FileInfo{}, err
	}
	return store.FileInfo{Name: h.Name, Size: size}, nil
}

// errStopList ends a listing whose fn failed.
var errStopList = finalError{errors.New("list stopped")}

// List calls fn for each file of type t, paging through any number of
// objects. A listing interrupted by a transient error resumes after the
// last key it reported. It skips keys that are not files of the layout. fn's
// error is returned unchanged.
func (b *Backend) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("s3 list: %w", err)
	}
	if t == store.ConfigFile {
		fi, err := b.Stat(ctx, store.Handle{Type: t})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return fn(fi)
	}
	prefix := b.base + string(t) + "/"
	var (
		after   string
		fnErr   error
		noOwner = false
	)
	err := b.retry(ctx, "list", string(t), func(int) error {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		opts := minio.ListObjectsOptions{
			Prefix:     prefix,
			Recursive:  true,
			StartAfter: after,
			MaxKeys:    b.listPage,
			FetchOwner: &noOwner,
		}
		for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, opts) {
			if obj.Err != nil {
				return obj.Err
			}
			after = obj.Key
			name, ok := parseKey(t, strings.TrimPrefix(obj.Key, prefix))
			if !ok {
				continue
			}
			if err := fn(store.FileInfo{Name: name, Size: obj.Size}); err != nil {
				fnErr = err
				return errStopList
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// parseKey returns the name of the file of type t at key, relative to the
// type's prefix, and whether it is a file of the layout.
func parseKey(t store.FileType, key string) (string, bool) {
	name := key
	if t == store.PackFile {
		sub, rest, ok := strings.Cut(key, "/")
		if !ok || sub != subdir(rest) {
			return "", false
		}
		name = rest
	}
	return name, (store.Handle{Type: t, Name: name}).Valid() == nil
}

// Delete removes the file. S3 deletes succeed for missing objects, so Delete
// looks the object up first to report store.ErrNotFound.
func (b *Backend) Delete(ctx context.Context, h store.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("s3 delete: %w", err)
	}
	what := rel(h)
	key := b.base + what
	err := b.retry(ctx, "delete", what, func(int) error {
		_, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return err
	}
	return b.retry(ctx, "delete", what, func(int) error {
		return b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{})
	})
}

// Close releases idle connections. The backend must not be used afterwards.
func (b *Backend) Close() error {
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	return nil
}
