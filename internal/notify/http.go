package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Body limits. Healthchecks keeps the first 10 KB of a ping body (its
// default PING_BODY_LIMIT); ntfy turns a longer message than 4 KB into an
// attachment, which a server without attachments refuses.
const (
	healthchecksLimit = 10_000
	ntfyLimit         = 4_096
)

// userAgent is sent with every HTTP request.
const userAgent = "bk"

// webhook posts ev as JSON.
func (n *Notifier) webhook(ctx context.Context, target string, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("notify webhook: encode event: %w", err)
	}
	header := http.Header{"Content-Type": {"application/json"}}
	return n.post(ctx, "webhook", target, header, body)
}

// healthchecksSuffix returns the ping path suffix for a job status: "" for
// success and "fail" for anything else.
func healthchecksSuffix(status string) string {
	if status == StatusSuccess {
		return ""
	}
	return "fail"
}

// healthchecks posts body to the ping URL base with suffix ("", "start" or
// "fail") appended to its path. A query (such as ?rid=) is kept.
func (n *Notifier) healthchecks(ctx context.Context, base, suffix string, body []byte) error {
	target := base
	if suffix != "" {
		u, err := url.Parse(base)
		if err != nil {
			return fmt.Errorf("notify healthchecks: %w", permanent(errors.New("invalid URL")))
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + suffix
		u.RawPath = ""
		target = u.String()
	}
	header := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	return n.post(ctx, "healthchecks", target, header, body)
}

// ntfy publishes the text summary of ev to an ntfy topic URL.
func (n *Notifier) ntfy(ctx context.Context, target string, ev Event) error {
	priority, tags := "default", "bk"
	switch ev.Status {
	case StatusFailure:
		priority, tags = "high", "x,bk"
	case StatusSuspicious:
		tags = "warning,bk"
	case StatusSuccess:
		tags = "white_check_mark,bk"
	}
	header := http.Header{
		"Content-Type": {"text/plain; charset=utf-8"},
		"Title":        {mime.QEncoding.Encode("utf-8", Title(ev))},
		"Priority":     {priority},
		"Tags":         {tags},
	}
	return n.post(ctx, "ntfy", target, header, truncate(Summary(ev), ntfyLimit))
}

// post sends body to target with header, retried by the Notifier's policy.
// Any 2xx answer is success. Errors name the target only by redacted(target).
func (n *Notifier) post(ctx context.Context, what, target string, header http.Header, body []byte) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("notify %s: %w", what, permanent(errors.New("invalid URL: want http:// or https:// and a host")))
	}
	name := what + " " + redacted(u)
	return n.retry(ctx, name, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return permanent(errors.New("cannot build request")) // err would quote the URL
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		resp, err := n.Client.Do(req)
		if err != nil {
			// A *url.Error quotes the whole URL, token included: keep
			// only its cause.
			if ue, ok := errors.AsType[*url.Error](err); ok {
				err = ue.Err
			}
			return err
		}
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return nil
		}
		err = fmt.Errorf("HTTP %s%s", resp.Status, quoteSnippet(snippet))
		if resp.StatusCode >= 400 && resp.StatusCode <= 499 &&
			resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return permanent(err)
		}
		return err
	})
}

// redacted names a URL by scheme and host only: paths and queries of
// webhook and ping URLs often hold a token, and user info a password.
func redacted(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/…"
	}
	return s
}

// quoteSnippet renders the start of an error response body for an error
// message, or "" when it is empty.
func quoteSnippet(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if s == "" {
		return ""
	}
	return fmt.Sprintf(": %q", s)
}

// truncate returns s as bytes, cut to at most limit bytes on a rune
// boundary with a marker at the end when it is longer.
func truncate(s string, limit int) []byte {
	if len(s) <= limit {
		return []byte(s)
	}
	const marker = "\n… (truncated)\n"
	cut := limit - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return []byte(s[:cut] + marker)
}
