package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bk-backup/bk/internal/config"
	"github.com/bk-backup/bk/internal/metrics"
	"github.com/bk-backup/bk/repo"
)

// viewMaxAge is how long bk serve answers from the snapshot list it read
// before it reads the repository again.
const viewMaxAge = 30 * time.Second

// healthGrace is the part of a schedule's interval a job may be late by
// before /healthz reports it: runs take time and timers have a randomized
// delay.
const healthGrace = 0.25

// server is the state of bk serve: the open repository, the config's jobs
// and the last snapshot list read.
type server struct {
	a    *app
	r    *repo.Repository
	cfg  *config.Config
	now  func() time.Time
	mu   sync.Mutex // guards view; held while the repository is read
	view *repoView
}

func newServer(a *app, r *repo.Repository, cfg *config.Config) *server {
	return &server{a: a, r: r, cfg: cfg, now: time.Now}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(s.gather))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /{$}", s.status)
	return mux
}

// current returns the repository's snapshot list, read again when the one
// held is older than viewMaxAge. Concurrent callers wait for one read. A
// failed read is not kept, so the next request tries again.
func (s *server) current(ctx context.Context) (*repoView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.view != nil && s.now().Sub(s.view.Read) < viewMaxAge {
		return s.view, nil
	}
	v, err := readRepoView(ctx, s.r)
	if err != nil {
		s.a.logger().Warn("read the repository", "error", err)
		return nil, fmt.Errorf("read the repository: %w", err)
	}
	s.view = v
	return v, nil
}

// gather is the /metrics source: what bk run --metrics-file writes.
func (s *server) gather() (metrics.Snapshot, error) {
	v, err := s.current(context.Background())
	if err != nil {
		return metrics.Snapshot{}, err
	}
	return v.metrics(s.cfg.Jobs), nil
}

// healthz answers 200 "ok" when every scheduled job is on time, else 503
// with one line per late job, or per error.
func (s *server) healthz(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	v, err := s.current(req.Context())
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	late := lateJobs(v, s.cfg.Jobs, s.now())
	if len(late) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, l := range late {
		fmt.Fprintln(w, l)
	}
}

// status serves the HTML status page.
func (s *server) status(w http.ResponseWriter, req *http.Request) {
	v, err := s.current(req.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, s.page(v)); err != nil {
		s.a.logger().Warn("render the status page", "error", err)
		http.Error(w, "render the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// The page is self-contained: no scripts, no external assets.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	_, _ = w.Write(b.Bytes())
}

// scheduleInterval is the time between two runs of a systemd OnCalendar
// expression, for the shorthands; any other expression counts as daily.
func scheduleInterval(expr string) time.Duration {
	const day = 24 * time.Hour
	switch strings.ToLower(strings.TrimSpace(expr)) {
	case "minutely":
		return time.Minute
	case "hourly":
		return time.Hour
	case "weekly":
		return 7 * day
	case "monthly":
		return 31 * day
	case "quarterly":
		return 92 * day
	case "semiannually":
		return 184 * day
	case "yearly", "annually":
		return 366 * day
	}
	return day
}

// allowedAge is how old the newest good snapshot of a job scheduled by
// expr may be: its interval plus healthGrace of it.
func allowedAge(expr string) time.Duration {
	d := scheduleInterval(expr)
	return d + time.Duration(float64(d)*healthGrace)
}

// lastGood returns the time of the newest good snapshot among snaps
// (oldest first), or the zero time.
func lastGood(snaps []*repo.Snapshot) time.Time {
	for i := len(snaps) - 1; i >= 0; i-- {
		if snaps[i].Status == "" {
			return snaps[i].Time
		}
	}
	return time.Time{}
}

// lateJobs describes, one line each, the scheduled jobs whose newest good
// snapshot is older than their schedule allows, or that never had one.
func lateJobs(v *repoView, jobs []*config.Job, now time.Time) []string {
	var out []string
	for _, job := range jobs {
		if job.Schedule == "" {
			continue
		}
		allowed := allowedAge(job.Schedule)
		last := lastGood(v.jobSnapshots(job.Name))
		switch {
		case last.IsZero():
			out = append(out, fmt.Sprintf("job %s: no good snapshot yet (schedule %q allows %s)",
				job.Name, job.Schedule, formatAge(allowed)))
		case now.Sub(last) > allowed:
			out = append(out, fmt.Sprintf("job %s: last good snapshot %s, older than %s",
				job.Name, last.UTC().Format("2006-01-02T15:04Z"), formatAge(allowed)))
		}
	}
	return out
}

// formatAge renders d in days, hours, minutes and seconds, leaving out the
// zero ones: 1d6h, 1h15m, 45s.
func formatAge(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return b.String()
}

// redactURL masks the password of a URL (the config refuses passwords in
// sources, but a location may still carry one); anything that is not a URL
// is returned unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	return u.Redacted()
}
