// Package notify tells people and monitors how a backup job went: it posts a
// job's Event to a webhook, pings a healthchecks.io-style check, publishes to
// an ntfy topic and sends a plain-text email.
//
// # Failure never spreads
//
// A notification failure never fails the backup. Start and Send return an
// error for the caller to log and count, and nothing else: they never panic
// (a panic inside a delivery is recovered and returned as an error) and they
// stop when their context is cancelled.
//
// # Which targets fire
//
// Healthchecks is pinged for every run: BASE/start from Start, then BASE
// after a success, or BASE/fail after a failure or a suspicious run, so the
// check goes down when a job fails or stops running. Webhook, ntfy and email
// fire only for the statuses listed in Targets.On, by default failure and
// suspicious. Send delivers to the targets concurrently.
//
// # Retries
//
// Each delivery is tried up to Notifier.Attempts times (3), waiting
// Notifier.Backoff between attempts (1s, then 2s, each stretched or shrunk
// by up to Notifier.Jitter, 20%), and each attempt is bounded by
// Notifier.AttemptTimeout (10s). An HTTP answer of 4xx other than 408 and 429
// is not retried, nor is an SMTP 5xx reply, nor an invalid address or URL:
// trying again would get the same answer.
//
// # What the messages hold
//
// Webhook receives the Event as JSON (field names in the struct tags).
// Healthchecks, ntfy and email receive Summary's text: job, status, host,
// duration, the job's error, and one line per snapshot with its name, short
// ID, bytes read and added, or its error. Healthchecks bodies are cut at 10
// KB and ntfy bodies at 4 KB, ntfy's message limit.
//
// # Secrets
//
// The SMTP password is sent only in AUTH PLAIN, which net/smtp refuses over
// an unencrypted connection to any host but localhost. It never appears in an
// error or a log line. Errors and logs name an HTTP target by its scheme and
// host only, since webhook and ping URLs often carry a token in their path.
package notify
