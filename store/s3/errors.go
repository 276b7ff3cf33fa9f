package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bk-backup/bk/store"
)

// kind classifies the error of one attempt.
type kind int

const (
	permanent kind = iota // retrying cannot help
	transient             // a later attempt may succeed
	notFound              // the object or bucket does not exist
	stopped               // the caller's context is done
	final                 // an error of ours or the caller's, returned as it is
)

// verdict is what classify makes of an error.
type verdict struct {
	kind kind
	hint string // for permanent errors and notFound: what it means, or ""
}

// finalError marks an error that is not the server's: the caller's reader
// failed, a range is past the end of a file, a put could not be rewound.
// It ends the retries and is returned wrapped, so errors.Is finds it.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }

// transientCodes are the S3 error codes worth retrying.
var transientCodes = []string{
	"SlowDown", "SlowDownRead", "SlowDownWrite", "Throttling", "ThrottlingException",
	"ThrottledException", "RequestThrottled", "RequestLimitExceeded", "TooManyRequests",
	"RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
	"XMinioServerNotInitialized", "OperationAborted",
	// The server received a body that does not match its Content-MD5 or
	// signed SHA-256: it was corrupted in transit, and the next attempt
	// sends it again.
	"BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody",
}

// permanentHints explain the permanent error codes a user can act on.
var permanentHints = map[string]string{
	"AccessDenied":                 "access denied: check the credentials and the bucket policy",
	"AllAccessDisabled":            "access denied: check the credentials and the bucket policy",
	"InvalidAccessKeyId":           "unknown access key id: check the credentials",
	"SignatureDoesNotMatch":        "signature mismatch: check the secret key",
	"ExpiredToken":                 "expired session token: refresh the credentials",
	"InvalidToken":                 "invalid session token: check the credentials",
	"TokenRefreshRequired":         "expired session token: refresh the credentials",
	"RequestTimeTooSkewed":         "the clock differs too much from the server's: check the system clock",
	"AuthorizationHeaderMalformed": "wrong region: check the region",
	"InvalidRegion":                "wrong region: check the region",
	"PermanentRedirect":            "wrong endpoint or region for this bucket",
	"InvalidBucketName":            "invalid bucket name",
}

// bodyRejected marks a put whose body the server found not to match its
// signature although the same keys have worked: the body was damaged on its
// way, and another attempt may get through.
type bodyRejected struct{ err error }

func (e bodyRejected) Error() string {
	return "the server rejected the body's checksum (corrupted in transit?): " + e.err.Error()
}

func (e bodyRejected) Unwrap() error { return e.err }

// classify decides whether err, the error of one attempt, is worth another
// attempt.
func classify(ctx context.Context, err error) verdict {
	var fe finalError
	if errors.As(err, &fe) {
		return verdict{kind: final}
	}
	if ctx.Err() == nil && errors.As(err, new(bodyRejected)) {
		return verdict{kind: transient}
	}
	if ctx.Err() != nil {
		return verdict{kind: stopped}
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return classifyResponse(resp)
	}
	var (
		dnsErr  *net.DNSError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
		verify  *tls.CertificateVerificationError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout || dnsErr.IsTemporary {
			return verdict{kind: transient}
		}
		return verdict{kind: permanent, hint: "unknown host: check the endpoint"}
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &host), errors.As(err, &verify):
		return verdict{kind: permanent, hint: "TLS certificate not trusted: check the endpoint and the CA file"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Not the caller's context (checked above): a timeout of the client.
		return verdict{kind: transient}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, net.ErrClosed):
		return verdict{kind: transient}
	case errors.As(err, &netErr) && netErr.Timeout():
		return verdict{kind: transient}
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "broken pipe", "server closed idle connection", "GOAWAY", "timeout"} {
		if strings.Contains(msg, s) {
			return verdict{kind: transient}
		}
	}
	return verdict{kind: permanent}
}

// classifyResponse classifies an error response of the server.
func classifyResponse(resp minio.ErrorResponse) verdict {
	switch {
	case resp.Code == minio.NoSuchKey || resp.Code == "NotFound":
		return verdict{kind: notFound}
	case resp.Code == minio.NoSuchBucket:
		return verdict{kind: notFound, hint: "the bucket does not exist"}
	case slices.Contains(transientCodes, resp.Code),
		resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusRequestTimeout:
		return verdict{kind: transient}
	case resp.StatusCode == http.StatusNotFound:
		return verdict{kind: notFound}
	}
	if hint, ok := permanentHints[resp.Code]; ok {
		return verdict{kind: permanent, hint: hint}
	}
	if resp.StatusCode == http.StatusForbidden {
		return verdict{kind: permanent, hint: permanentHints["AccessDenied"]}
	}
	return verdict{kind: permanent}
}

// describe returns the text of an attempt's error: "503 SlowDown: message"
// for an error response of the server, the error's own text otherwise.
func describe(err error) string {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return err.Error()
	}
	code := resp.Code
	if code == "" || !strings.HasPrefix(code, fmt.Sprint(resp.StatusCode)) {
		code = strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, code))
	}
	if resp.Message == "" || resp.Message == resp.Code {
		return code
	}
	return code + ": " + resp.Message
}

// opError is the error an operation returns. Its message is scrubbed of
// credentials. It wraps only sentinels and the caller's own errors, never
// the SDK's errors, whose text might hold credentials.
type opError struct {
	msg  string
	errs []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

// retryPolicy is how an operation is retried.
type retryPolicy struct {
	deadline  time.Duration // no attempt starts after it has passed
	base, cap time.Duration // the backoff before attempt n+1 is random in [0, min(cap, base·2^(n-1)))
}

// backoff returns the wait before the attempt after attempt n (full
// jitter).
func (p retryPolicy) backoff(n int) time.Duration {
	limit := p.cap
	if n < 32 && p.base<<(n-1) < limit && p.base<<(n-1) > 0 {
		limit = p.base << (n - 1)
	}
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}

// retry runs attempt, numbered from 1, until it succeeds, fails for good
// or the retry deadline has passed, and returns the error for the caller.
// op and what name the operation for messages ("put", "data/ab/abcd").
func (b *Backend) retry(ctx context.Context, op, what string, attempt func(n int) error) error {
	start := time.Now()
	for n := 1; ; n++ {
		err := attempt(n)
		if err == nil {
			b.keysWork.Store(true)
			return nil
		}
		v := classify(ctx, err)
		if v.kind == transient {
			wait := b.policy.backoff(n)
			if time.Since(start)+wait <= b.policy.deadline {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
					continue
				case <-ctx.Done():
					t.Stop()
					v.kind = stopped
				}
			}
		}
		return b.opError(ctx, op, what, v, err, n, time.Since(start))
	}
}

// opError builds the error an operation returns after attempt n failed with
// err, classified as v.
func (b *Backend) opError(ctx context.Context, op, what string, v verdict, err error, n int, elapsed time.Duration) error {
	head := "s3 " + op
	if what != "" {
		head += " " + what
	}
	var (
		msg  string
		errs []error
	)
	switch v.kind {
	case final:
		msg = fmt.Sprintf("%s: %v", head, err)
		errs = []error{err}
	case stopped:
		cause := context.Cause(ctx)
		msg = fmt.Sprintf("%s: %v", head, cause)
		if n > 1 || !errors.Is(err, cause) {
			msg += fmt.Sprintf(" (after %s)", attempts(n, elapsed))
		}
		errs = []error{cause}
		if ctx.Err() != cause {
			errs = append(errs, ctx.Err())
		}
	case notFound:
		msg = head + ": "
		if v.hint != "" {
			msg += v.hint + ": "
		}
		msg += store.ErrNotFound.Error()
		errs = []error{store.ErrNotFound}
	case transient:
		msg = fmt.Sprintf("%s: transient error, gave up after %s: %s", head, attempts(n, elapsed), describe(err))
	default:
		if v.hint != "" {
			msg = fmt.Sprintf("%s: permanent error (%s): %s", head, v.hint, describe(err))
		} else {
			msg = fmt.Sprintf("%s: permanent error: %s", head, describe(err))
		}
	}
	return &opError{msg: b.secrets.scrub(msg), errs: errs}
}

// attempts describes n attempts that took elapsed.
func attempts(n int, elapsed time.Duration) string {
	s := "s"
	if n == 1 {
		s = ""
	}
	round := time.Millisecond
	if elapsed >= 10*time.Second {
		round = time.Second
	}
	return fmt.Sprintf("%d attempt%s in %v", n, s, elapsed.Round(round))
}

// scrubber removes credentials from messages.
type scrubber struct {
	mu      sync.Mutex
	secrets []string // longest first
}

// add records the values to scrub, in the forms they may take in a message.
func (s *scrubber) add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v == "" {
			continue
		}
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if !slices.Contains(s.secrets, form) {
				s.secrets = append(s.secrets, form)
			}
		}
	}
	slices.SortFunc(s.secrets, func(a, b string) int { return len(b) - len(a) })
}

// scrub returns msg with every recorded secret replaced by "***".
func (s *scrubber) scrub(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.secrets {
		msg = strings.ReplaceAll(msg, v, "***")
	}
	return msg
}

// recordingProvider hands out the values of creds and records each in a
// scrubber, so that no message shows them, even after a refresh.
// It also records whether the last value was anonymous (no keys), in which
// case requests go unsigned.
type recordingProvider struct {
	creds     *credentials.Credentials
	secrets   *scrubber
	anonymous atomic.Bool
}

// RetrieveWithCredContext returns the current value of the credentials.
func (p *recordingProvider) RetrieveWithCredContext(cc *credentials.CredContext) (credentials.Value, error) {
	v, err := p.creds.GetWithContext(cc)
	p.secrets.add(v.AccessKeyID, v.SecretAccessKey, v.SessionToken)
	p.anonymous.Store(v.AccessKeyID == "" || v.SecretAccessKey == "")
	if err != nil {
		return v, errors.New(p.secrets.scrub(err.Error()))
	}
	return v, nil
}

// Retrieve returns the current value of the credentials.
func (p *recordingProvider) Retrieve() (credentials.Value, error) {
	return p.RetrieveWithCredContext(nil)
}

// IsExpired reports whether the credentials need a refresh.
func (p *recordingProvider) IsExpired() bool { return p.creds.IsExpired() }
