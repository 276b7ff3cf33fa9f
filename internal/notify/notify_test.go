package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestNotifier returns a Notifier with short delays whose log lines go to
// the returned buffer.
func newTestNotifier(tb testing.TB) (*Notifier, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	n := New(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	n.Backoff = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond}
	n.AttemptTimeout = 2 * time.Second
	return n, logs
}

func testEvent(status string) Event {
	start := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	ev := Event{
		Job:      "nightly",
		Host:     "db1",
		Status:   status,
		Started:  start,
		Finished: start.Add(72 * time.Second),
		Snapshots: []Snapshot{
			{Source: "postgres://db1/app", Name: "postgres:app", ID: "3f2a9c1e5b7d9f00aa", Status: StatusSuccess, Bytes: 1288490188, Added: 50331648},
		},
	}
	if status != StatusSuccess {
		ev.Snapshots = append(ev.Snapshots, Snapshot{Source: "mysql://db1/shop", Name: "mysql:shop", Status: StatusFailure, Error: "dump: exit status 2"})
		ev.Error = "1 of 2 snapshots failed"
	}
	return ev
}

// request is what a test HTTP server received.
type request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// recorder is an httptest server that records requests and answers each
// with the next status of its script (200 once the script is used up).
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	script []int
}

func newRecorder(tb testing.TB, script ...int) *recorder {
	tb.Helper()
	r := &recorder{script: script}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), body})
		code := http.StatusOK
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}))
	tb.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func TestWebhookJSON(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newRecorder(t)
	ev := testEvent(StatusFailure)
	if err := n.Send(context.Background(), Targets{Webhook: srv.URL + "/hook/secret-token"}, ev); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/hook/secret-token" {
		t.Errorf("got %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := r.Header.Get("User-Agent"); got != "bk" {
		t.Errorf("User-Agent %q", got)
	}
	var got struct {
		Job, Host, Status, Error string
		Started, Finished        time.Time
		Snapshots                []struct {
			Source, Name, ID, Status, Error string
			Bytes, Added                    int64
		}
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	if got.Job != "nightly" || got.Host != "db1" || got.Status != "failure" || got.Error != "1 of 2 snapshots failed" {
		t.Errorf("got %+v", got)
	}
	if !got.Started.Equal(ev.Started) || !got.Finished.Equal(ev.Finished) {
		t.Errorf("times %v %v", got.Started, got.Finished)
	}
	if len(got.Snapshots) != 2 || got.Snapshots[0].Name != "postgres:app" || got.Snapshots[0].Bytes != 1288490188 ||
		got.Snapshots[0].Added != 50331648 || got.Snapshots[0].ID != "3f2a9c1e5b7d9f00aa" || got.Snapshots[1].Error != "dump: exit status 2" {
		t.Errorf("snapshots %+v", got.Snapshots)
	}
	// The wire names are part of the webhook contract.
	var raw map[string]any
	_ = json.Unmarshal(r.Body, &raw)
	for _, k := range []string{"job", "host", "status", "started", "finished", "snapshots", "error"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, r.Body)
		}
	}
}

func TestHealthchecksPaths(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newRecorder(t)
	ctx := context.Background()
	tg := Targets{Healthchecks: srv.URL + "/ping/abc"}
	if err := n.Start(ctx, tg, "nightly"); err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{StatusSuccess, StatusFailure, StatusSuspicious} {
		if err := n.Send(ctx, tg, testEvent(status)); err != nil {
			t.Fatal(err)
		}
	}
	// A trailing slash and a query are kept apart from the suffix.
	if err := n.Start(ctx, Targets{Healthchecks: srv.URL + "/ping/abc/?rid=42"}, "nightly"); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	want := []string{"/ping/abc/start", "/ping/abc", "/ping/abc/fail", "/ping/abc/fail", "/ping/abc/start"}
	if len(reqs) != len(want) {
		t.Fatalf("got %d requests, want %d", len(reqs), len(want))
	}
	for i, r := range reqs {
		if r.Path != want[i] || r.Method != http.MethodPost {
			t.Errorf("request %d: %s %s, want POST %s", i, r.Method, r.Path, want[i])
		}
	}
	if reqs[4].Query != "rid=42" {
		t.Errorf("query %q", reqs[4].Query)
	}
	if body := string(reqs[2].Body); !strings.Contains(body, "bk: job nightly failure on db1") || !strings.Contains(body, "dump: exit status 2") {
		t.Errorf("fail body:\n%s", body)
	}
}

func TestHealthchecksBodyLimit(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newRecorder(t)
	ev := testEvent(StatusFailure)
	ev.Error = strings.Repeat("é", 20_000)
	if err := n.Send(context.Background(), Targets{Healthchecks: srv.URL}, ev); err != nil {
		t.Fatal(err)
	}
	body := srv.requests()[0].Body
	if len(body) > 10_000 || !strings.HasSuffix(string(body), "(truncated)\n") {
		t.Errorf("body of %d bytes ends %q", len(body), body[max(0, len(body)-20):])
	}
}

func TestNtfy(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newRecorder(t)
	ctx := context.Background()
	tg := Targets{Ntfy: srv.URL + "/backups", On: []string{StatusFailure, StatusSuspicious, StatusSuccess}}
	for _, status := range []string{StatusFailure, StatusSuspicious, StatusSuccess} {
		if err := n.Send(ctx, tg, testEvent(status)); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests", len(reqs))
	}
	for i, want := range []struct{ title, priority, tag string }{
		{"bk: nightly failure on db1", "high", "x"},
		{"bk: nightly suspicious on db1", "default", "warning"},
		{"bk: nightly success on db1", "default", "white_check_mark"},
	} {
		h := reqs[i].Header
		if h.Get("Title") != want.title || h.Get("Priority") != want.priority || !strings.HasPrefix(h.Get("Tags"), want.tag+",") {
			t.Errorf("request %d: Title %q Priority %q Tags %q", i, h.Get("Title"), h.Get("Priority"), h.Get("Tags"))
		}
		if reqs[i].Path != "/backups" || h.Get("User-Agent") != "bk" {
			t.Errorf("request %d: %s UA %q", i, reqs[i].Path, h.Get("User-Agent"))
		}
	}
	if got, want := string(reqs[0].Body), Summary(testEvent(StatusFailure)); got != want {
		t.Errorf("body:\n%s\nwant:\n%s", got, want)
	}
}

func TestRetryThenDelivered(t *testing.T) {
	n, logs := newTestNotifier(t)
	srv := newRecorder(t, 500, 500, 200)
	if err := n.Send(context.Background(), Targets{Webhook: srv.URL}, testEvent(StatusFailure)); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.requests()); got != 3 {
		t.Errorf("got %d attempts, want 3", got)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("retries not logged:\n%s", logs)
	}
}

func TestRetryGivesUp(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newRecorder(t, 500, 500, 500, 500, 500)
	start := time.Now()
	err := n.Send(context.Background(), Targets{Webhook: srv.URL + "/hook/secret-token"}, testEvent(StatusFailure))
	if err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if got := len(srv.requests()); got != 3 {
		t.Errorf("got %d attempts, want 3", got)
	}
	msg := err.Error()
	for _, want := range []string{"notify webhook", "500", "after 3 attempts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "secret-token") {
		t.Errorf("error %q quotes the URL path", msg)
	}
}

func TestRetryStatuses(t *testing.T) {
	for _, tc := range []struct {
		code     int
		attempts int
	}{
		{404, 1}, {400, 1}, {401, 1}, {408, 3}, {429, 3}, {502, 3}, {503, 3},
	} {
		n, _ := newTestNotifier(t)
		srv := newRecorder(t, tc.code, tc.code, tc.code)
		err := n.Send(context.Background(), Targets{Ntfy: srv.URL}, testEvent(StatusFailure))
		if err == nil {
			t.Errorf("%d: no error", tc.code)
		}
		if got := len(srv.requests()); got != tc.attempts {
			t.Errorf("%d: %d attempts, want %d", tc.code, got, tc.attempts)
		}
	}
}

// closedPort returns an address on 127.0.0.1 where nothing listens.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachable(t *testing.T) {
	n, _ := newTestNotifier(t)
	addr := closedPort(t)
	tg := Targets{
		Webhook:      "http://" + addr + "/hook/secret-token",
		Healthchecks: "http://" + addr + "/ping/uuid-secret",
		Ntfy:         "http://" + addr + "/topic",
		Email:        &Email{SMTP: addr, From: "bk@example.com", To: []string{"ops@example.com"}},
	}
	start := time.Now()
	if err := n.Start(context.Background(), tg, "nightly"); err == nil {
		t.Error("Start: no error")
	}
	err := n.Send(context.Background(), tg, testEvent(StatusFailure))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if err == nil {
		t.Fatal("Send: no error")
	}
	msg := err.Error()
	for _, want := range []string{"notify webhook", "notify healthchecks", "notify ntfy", "notify email", "after 3 attempts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, secret := range []string{"secret-token", "uuid-secret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error quotes %q:\n%s", secret, msg)
		}
	}
}

func TestHangingServer(t *testing.T) {
	n, _ := newTestNotifier(t)
	n.AttemptTimeout = 100 * time.Millisecond
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	err := n.Send(context.Background(), Targets{Webhook: srv.URL}, testEvent(StatusFailure))
	d := time.Since(start)
	if err == nil {
		t.Fatal("no error")
	}
	if d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %v, want about 3 × 100ms", d)
	}
	if !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Errorf("error %q does not name the timeout", err)
	}
	if got := hits.Load(); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

func TestContextCancelled(t *testing.T) {
	n, _ := newTestNotifier(t)
	n.Backoff = []time.Duration{time.Hour}
	srv := newRecorder(t, 500, 500, 500)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := n.Send(ctx, Targets{Webhook: srv.URL}, testEvent(StatusFailure))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestOnFiltering(t *testing.T) {
	n, _ := newTestNotifier(t)
	hook, hc := newRecorder(t), newRecorder(t)
	ctx := context.Background()
	tg := Targets{Webhook: hook.URL, Healthchecks: hc.URL + "/p"}
	if err := n.Send(ctx, tg, testEvent(StatusSuccess)); err != nil {
		t.Fatal(err)
	}
	if got := len(hook.requests()); got != 0 {
		t.Errorf("default On: webhook got %d requests for a success", got)
	}
	if reqs := hc.requests(); len(reqs) != 1 || reqs[0].Path != "/p" {
		t.Errorf("healthchecks not pinged on success: %+v", reqs)
	}
	if err := n.Send(ctx, tg, testEvent(StatusSuspicious)); err != nil {
		t.Fatal(err)
	}
	if got := len(hook.requests()); got != 1 {
		t.Errorf("default On: webhook got %d requests for suspicious, want 1", got)
	}
	tg.On = []string{StatusSuccess}
	if err := n.Send(ctx, tg, testEvent(StatusSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(ctx, tg, testEvent(StatusFailure)); err != nil {
		t.Fatal(err)
	}
	if got := len(hook.requests()); got != 2 {
		t.Errorf("On=[success]: webhook got %d requests in all, want 2", got)
	}
	if got := len(hc.requests()); got != 4 {
		t.Errorf("healthchecks got %d pings, want 4", got)
	}
}

func TestNoTargets(t *testing.T) {
	n := New(nil)
	if err := n.Start(context.Background(), Targets{}, "j"); err != nil {
		t.Error(err)
	}
	if err := n.Send(context.Background(), Targets{}, testEvent(StatusFailure)); err != nil {
		t.Error(err)
	}
}

func TestInvalidURL(t *testing.T) {
	n, _ := newTestNotifier(t)
	err := n.Send(context.Background(), Targets{Webhook: "ftp://x/y", Ntfy: "::bad"}, testEvent(StatusFailure))
	if err == nil || !strings.Contains(err.Error(), "invalid URL") {
		t.Errorf("got %v", err)
	}
}
