package s3

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config describes an S3 repository location and how to reach it.
type Config struct {
	Endpoint     string // host[:port]
	Secure       bool   // https
	Bucket       string
	Prefix       string // key prefix without leading/trailing slash; "" for the bucket root
	Region       string // "" lets the client ask the server
	Lookup       string // "auto" (default), "path" or "dns" (virtual-host) bucket addressing
	CAFile       string // PEM bundle for a private CA
	StorageClass string // for data packs (x-amz-storage-class); "" default

	// Credentials: nil means the chain AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
	// AWS_SESSION_TOKEN, then the shared credentials file with AWS_PROFILE
	// (default profile "default"), then IAM instance metadata.
	Credentials *credentials.Credentials

	// Transport overrides the HTTP transport (tests inject faults). nil: the
	// default transport, trusting CAFile if set. Transport and CAFile are
	// exclusive.
	Transport http.RoundTripper

	// RetryDeadline bounds the retries of one operation (default 2 minutes):
	// no new attempt starts once it has passed.
	RetryDeadline time.Duration
}

// DefaultRetryDeadline is the RetryDeadline of a Config that sets none.
const DefaultRetryDeadline = 2 * time.Minute

// The values of Config.Lookup.
const (
	LookupAuto = "auto"
	LookupPath = "path"
	LookupDNS  = "dns"
)

// urlScheme starts every S3 repository URL.
const urlScheme = "s3:"

// ParseURL parses an S3 repository URL:
//
//	s3:http://HOST[:PORT]/BUCKET[/PREFIX]
//	s3:https://HOST[:PORT]/BUCKET[/PREFIX]
//	s3:HOST[:PORT]/BUCKET[/PREFIX]          (https)
//
// The prefix may have several segments ("a/b"); trailing slashes are
// ignored. Credentials in the URL (user:pass@) are rejected: they would end
// up in shell histories and process listings. Neither a query nor a fragment
// is allowed. The returned Config has no credentials (the default chain) and
// the default region, lookup and retry deadline.
func ParseURL(s string) (Config, error) {
	rest, ok := strings.CutPrefix(s, urlScheme)
	if !ok {
		return Config{}, fmt.Errorf("invalid S3 URL %q: does not start with %q", s, urlScheme)
	}
	secure := true
	switch {
	case strings.HasPrefix(rest, "http://"):
		secure = false
	case strings.HasPrefix(rest, "https://"):
	case strings.Contains(rest, "://"):
		scheme, _, _ := strings.Cut(rest, "://")
		return Config{}, fmt.Errorf("invalid S3 URL: scheme %q is not http or https", scheme)
	default:
		rest = "https://" + rest
	}
	// Check for credentials before anything else and never echo the URL
	// when they may be there: it would print the secret. A password may hold
	// a slash, so any '@' counts; bucket names cannot contain one.
	if strings.Contains(rest, "@") {
		return Config{}, errors.New("invalid S3 URL: credentials in the URL (user:password@) are not supported " +
			"(and '@' is not allowed in S3 URLs); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY " +
			"or use a shared credentials file (AWS_PROFILE)")
	}
	u, err := url.Parse(rest)
	if err != nil {
		return Config{}, fmt.Errorf("invalid S3 URL %q: %v", s, unwrapURLError(err))
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return Config{}, fmt.Errorf("invalid S3 URL %q: no host", s)
	case u.RawQuery != "" || u.ForceQuery:
		return Config{}, fmt.Errorf("invalid S3 URL %q: a query (?...) is not allowed", s)
	case u.Fragment != "":
		return Config{}, fmt.Errorf("invalid S3 URL %q: a fragment (#...) is not allowed", s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err == nil && port == "" {
		return Config{}, fmt.Errorf("invalid S3 URL %q: empty port", s)
	}
	path := strings.TrimLeft(u.Path, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Config{}, fmt.Errorf("invalid S3 URL %q: no bucket (want s3:https://HOST/BUCKET[/PREFIX])", s)
	}
	cfg := Config{
		Endpoint: u.Host,
		Secure:   secure,
		Bucket:   bucket,
		Prefix:   strings.TrimRight(prefix, "/"),
	}
	if err := cfg.check(); err != nil {
		return Config{}, fmt.Errorf("invalid S3 URL %q: %v", s, err)
	}
	return cfg, nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the URL.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// check validates the parts of the location.
func (c Config) check() error {
	switch {
	case c.Endpoint == "":
		return errors.New("no endpoint")
	case strings.ContainsAny(c.Endpoint, "/@?#"):
		return fmt.Errorf("endpoint %q is not host[:port]", c.Endpoint)
	}
	if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
		return fmt.Errorf("bucket %q: %v", c.Bucket, err)
	}
	if c.Prefix != "" {
		if strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") {
			return fmt.Errorf("prefix %q starts or ends with a slash", c.Prefix)
		}
		for seg := range strings.SplitSeq(c.Prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return fmt.Errorf("prefix %q has an empty, . or .. segment", c.Prefix)
			}
		}
	}
	switch c.Lookup {
	case "", LookupAuto, LookupPath, LookupDNS:
	default:
		return fmt.Errorf("bucket lookup %q is not auto, path or dns", c.Lookup)
	}
	if c.RetryDeadline < 0 {
		return fmt.Errorf("negative retry deadline %v", c.RetryDeadline)
	}
	if c.Transport != nil && c.CAFile != "" {
		return errors.New("CAFile and Transport are exclusive")
	}
	return nil
}

// location returns "s3:http(s)://HOST/BUCKET[/PREFIX]", which ParseURL
// accepts. It holds no credentials, as Config has none in its location.
func (c Config) location() string {
	scheme := "https"
	if !c.Secure {
		scheme = "http"
	}
	loc := urlScheme + scheme + "://" + c.Endpoint + "/" + c.Bucket
	if c.Prefix != "" {
		loc += "/" + c.Prefix
	}
	return loc
}
