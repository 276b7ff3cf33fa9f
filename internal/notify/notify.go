package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Statuses of a job run, in Event.Status and Targets.On.
const (
	StatusSuccess    = "success"
	StatusFailure    = "failure"
	StatusSuspicious = "suspicious"
)

// Event describes one job run. Its JSON form is what a webhook receives.
type Event struct {
	Job       string     `json:"job"`
	Host      string     `json:"host"`
	Status    string     `json:"status"` // StatusSuccess, StatusFailure or StatusSuspicious
	Started   time.Time  `json:"started"`
	Finished  time.Time  `json:"finished"`
	Snapshots []Snapshot `json:"snapshots"`
	Error     string     `json:"error,omitempty"` // the job's error, if any
}

// Snapshot describes one snapshot a job took, or failed to take.
type Snapshot struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
	Bytes  int64  `json:"bytes"` // bytes read from the source
	Added  int64  `json:"added"` // bytes added to the repository
	Error  string `json:"error,omitempty"`
}

// Email is where and how to send notification mail.
type Email struct {
	SMTP     string   // host:port of the submission server
	From     string   // an RFC 5322 address, "bk@example.com" or "bk <bk@example.com>"
	To       []string // one or more addresses
	Username string   // AUTH PLAIN user; empty: no authentication
	Password string   // already read from its file by the caller; never logged
	StartTLS bool     // upgrade with STARTTLS when the server offers it
}

// Targets says where notifications go. An empty field is a target not used.
type Targets struct {
	// Webhook receives a POST of the Event as JSON.
	Webhook string
	// Healthchecks is a healthchecks.io-style ping URL: BASE/start is pinged
	// at start, BASE on success, BASE/fail on failure or suspicious. It is
	// pinged for every status, whatever On says.
	Healthchecks string
	// Ntfy is an ntfy topic URL that receives the text summary.
	Ntfy string
	// Email, when not nil, receives the text summary as plain-text mail.
	Email *Email
	// On lists the statuses that trigger Webhook, Ntfy and Email; empty
	// means StatusFailure and StatusSuspicious.
	On []string
}

// wants reports whether status triggers the webhook, ntfy and email targets.
func (t Targets) wants(status string) bool {
	if len(t.On) == 0 {
		return status == StatusFailure || status == StatusSuspicious
	}
	return slices.Contains(t.On, status)
}

// A Notifier delivers notifications. Its fields may be changed before first
// use (tests shorten the delays); after that it is safe for concurrent use.
type Notifier struct {
	// Client sends the HTTP requests. Its Timeout should be zero: each
	// attempt is bounded by AttemptTimeout through its context.
	Client *http.Client
	// Log receives a line for every failed attempt. It is never nil.
	Log *slog.Logger
	// Attempts is how many times a delivery is tried; less than 1 means 1.
	Attempts int
	// Backoff[i] is the wait after failed attempt i+1; the last value is
	// reused when there are more attempts than values.
	Backoff []time.Duration
	// Jitter stretches or shrinks each wait by a random fraction up to
	// Jitter (0.2: ±20%), so that many hosts do not retry in step.
	Jitter float64
	// AttemptTimeout bounds one attempt: connecting, sending and reading the
	// answer. Zero means no bound other than the context.
	AttemptTimeout time.Duration
}

// New returns a Notifier with the default policy: 3 attempts, waits of 1s
// then 2s with ±20% jitter, 10s per attempt. A nil log discards log lines.
func New(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &Notifier{
		Client:         &http.Client{Transport: transport},
		Log:            log,
		Attempts:       3,
		Backoff:        []time.Duration{1 * time.Second, 2 * time.Second},
		Jitter:         0.2,
		AttemptTimeout: 10 * time.Second,
	}
}

// Start pings the healthchecks start URL, if one is set, so the check shows
// the job running and can measure its duration. An error is logged and
// returned; it must never stop the job.
func (n *Notifier) Start(ctx context.Context, t Targets, job string) (err error) {
	if t.Healthchecks == "" {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("notify healthchecks: panic: %v", r)
		}
		if err != nil {
			n.Log.Warn("notification failed", "target", "healthchecks", "job", job, "err", err)
		}
	}()
	return n.healthchecks(ctx, t.Healthchecks, "start", []byte("bk: job "+job+" started\n"))
}

// Send delivers ev to every target that wants it: healthchecks always,
// webhook, ntfy and email when t.On includes ev.Status. The targets are
// served concurrently, each retried by the Notifier's policy. Send returns
// the failures joined with errors.Join, each naming its target, or nil; the
// caller logs and counts them. It never panics.
func (n *Notifier) Send(ctx context.Context, t Targets, ev Event) error {
	type delivery struct {
		name string
		fn   func(context.Context) error
	}
	var ds []delivery
	if t.Healthchecks != "" {
		ds = append(ds, delivery{"healthchecks", func(ctx context.Context) error {
			return n.healthchecks(ctx, t.Healthchecks, healthchecksSuffix(ev.Status), truncate(Summary(ev), healthchecksLimit))
		}})
	}
	if t.wants(ev.Status) {
		if t.Webhook != "" {
			ds = append(ds, delivery{"webhook", func(ctx context.Context) error { return n.webhook(ctx, t.Webhook, ev) }})
		}
		if t.Ntfy != "" {
			ds = append(ds, delivery{"ntfy", func(ctx context.Context) error { return n.ntfy(ctx, t.Ntfy, ev) }})
		}
		if t.Email != nil {
			ds = append(ds, delivery{"email", func(ctx context.Context) error { return n.email(ctx, *t.Email, ev) }})
		}
	}
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("notify %s: panic: %v", d.name, r)
				}
			}()
			errs[i] = d.fn(ctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// permanentError marks a failure that another attempt would repeat.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent wraps err so that retry gives up at once.
func permanent(err error) error { return &permanentError{err} }

// retry calls attempt until it succeeds, returns a permanent error, the
// attempts run out or ctx ends. Each call gets a context bounded by
// AttemptTimeout. The error returned is the last attempt's, prefixed with
// what and the number of attempts made.
func (n *Notifier) retry(ctx context.Context, what string, attempt func(context.Context) error) error {
	attempts := max(n.Attempts, 1)
	var err error
	for i := 1; ; i++ {
		err = n.once(ctx, attempt)
		if err == nil {
			if i > 1 {
				n.Log.Info("notification delivered after retry", "target", what, "attempt", i)
			}
			return nil
		}
		if _, perm := errors.AsType[*permanentError](err); perm || i >= attempts || ctx.Err() != nil {
			return fmt.Errorf("notify %s: %w (after %d attempt%s)", what, err, i, plural(i))
		}
		wait := n.backoff(i)
		n.Log.Warn("notification attempt failed, retrying", "target", what, "attempt", i, "wait", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("notify %s: %w (after %d attempt%s; %w)", what, err, i, plural(i), context.Cause(ctx))
		case <-timer.C:
		}
	}
}

// once runs one attempt under the per-attempt timeout.
func (n *Notifier) once(ctx context.Context, attempt func(context.Context) error) error {
	if n.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, n.AttemptTimeout,
			fmt.Errorf("attempt timed out after %v", n.AttemptTimeout))
		defer cancel()
	}
	err := attempt(ctx)
	if err == nil {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		// A connection deadline set from ctx's can fire a moment before
		// ctx's own timer: let ctx catch up so that its cause is known.
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		// Name the timeout rather than a bare "context deadline exceeded".
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}
	return err
}

// backoff returns the wait after failed attempt i (from 1), with jitter.
func (n *Notifier) backoff(i int) time.Duration {
	if len(n.Backoff) == 0 {
		return 0
	}
	d := n.Backoff[min(i-1, len(n.Backoff)-1)]
	if n.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + n.Jitter*(2*rand.Float64()-1)))
	}
	return max(d, 0)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
