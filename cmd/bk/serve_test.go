package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/config"
	"github.com/bk-backup/bk/repo"
)

func TestServeAllowedAge(t *testing.T) {
	for expr, want := range map[string]string{
		"hourly": "1h15m", "daily": "1d6h", "Daily": "1d6h", "weekly": "8d18h", "monthly": "38d18h",
		"yearly": "457d12h", "minutely": "1m15s", "Mon..Fri *-*-* 02:30": "1d6h",
	} {
		if got := formatAge(allowedAge(expr)); got != want {
			t.Errorf("allowedAge(%q) = %s, want %s", expr, got, want)
		}
	}
	if got := formatAge(0); got != "0s" {
		t.Errorf("formatAge(0) = %s", got)
	}
}

func TestServeLateJobs(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	snap := func(job, host string, age time.Duration, status string) *repo.Snapshot {
		return &repo.Snapshot{Name: "sqlite:" + job, Host: host, Tags: []string{jobTag(job)}, Time: now.Add(-age), Status: status}
	}
	v := &repoView{Host: "db1", Snapshots: []*repo.Snapshot{ // oldest first
		snap("late", "db1", 40*time.Hour, ""),
		snap("ok", "db1", 29*time.Hour, ""),
		snap("late", "db1", 2*time.Hour, repo.StatusSuspicious), // not good: does not count
		snap("elsewhere", "db2", time.Hour, ""),                 // another host's: does not count
		snap("ok", "db1", time.Hour, repo.StatusBroken),
	}}
	jobs := []*config.Job{
		{Name: "ok", Schedule: "daily"},
		{Name: "late", Schedule: "daily"},
		{Name: "elsewhere", Schedule: "hourly"},
		{Name: "never", Schedule: "weekly"},
		{Name: "manual"},
	}
	got := strings.Join(lateJobs(v, jobs, now), "\n")
	want := `job late: last good snapshot 2026-11-20T20:00Z, older than 1d6h
job elsewhere: no good snapshot yet (schedule "hourly" allows 1h15m)
job never: no good snapshot yet (schedule "weekly" allows 8d18h)`
	if got != want {
		t.Errorf("lateJobs:\n%s\nwant:\n%s", got, want)
	}
}

func TestServeAddedChart(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	snaps := []*repo.Snapshot{
		{Time: now.AddDate(0, 0, -40), AddedBytes: 1 << 30}, // before the window
		{Time: now.AddDate(0, 0, -29).Add(-11 * time.Hour), AddedBytes: 1 << 20},
		{Time: now.Add(-time.Hour), AddedBytes: 2 << 20},
		{Time: now.Add(-2 * time.Hour), AddedBytes: 1 << 20},
	}
	c := addedChart(snaps, now)
	if len(c.Bars) != chartDays || c.From != "2026-10-24" || c.To != "2026-11-22" || c.Total != "4.0 MiB" {
		t.Fatalf("chart: %d bars from %s to %s, %s", len(c.Bars), c.From, c.To, c.Total)
	}
	first, last := c.Bars[0], c.Bars[chartDays-1]
	if last.Y != c.Top || last.H != c.Bottom-c.Top || max(first.H*3-last.H, last.H-first.H*3) > 2 || c.Bars[1].H != 0 {
		t.Errorf("bars: first %+v, last %+v, plot %d..%d", first, last, c.Top, c.Bottom)
	}
	if c.Grid[2].Label != "3.0 MiB" || !strings.Contains(last.Title, "3.0 MiB") || last.Label != "11-22" {
		t.Errorf("labels: grid %+v, last bar %+v", c.Grid, last)
	}
	if !addedChart(nil, now).Empty {
		t.Error("a chart without snapshots is not marked empty")
	}
}

func TestServeNiceCeil(t *testing.T) {
	for n, want := range map[int64]int64{0: 1024, 1000: 1024, 1500: 2048, 3 << 20: 3 << 20, 3<<20 + 1: 4 << 20, 600 << 10: 600 << 10, 900 << 10: 1 << 20} {
		if got := niceCeil(n); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestServeIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9290": true, "[::1]:9290": true, "localhost:9290": true, "127.0.0.2:1": true,
		"0.0.0.0:9290": false, ":9290": false, "10.0.0.5:9290": false, "[::]:9290": false,
	} {
		got, err := isLoopback(context.Background(), addr)
		if err != nil || got != want {
			t.Errorf("isLoopback(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	if _, err := isLoopback(context.Background(), "9290"); err == nil {
		t.Error("isLoopback accepted an address without a port")
	}
}

// TestServeStatusTemplateEscapes renders hostile names: html/template must
// escape them in text, attributes and the SVG.
func TestServeStatusTemplateEscapes(t *testing.T) {
	evil := `<script>alert("x")</script>`
	p := statusPage{Location: evil, Host: evil, Late: []string{evil},
		Jobs: []jobStatus{{Name: evil, Schedule: evil, Sources: []string{evil},
			Rows: []sourceStatus{{Name: evil, Time: evil, ISOTime: `"><script>`, Status: `good" onclick="x`}}}},
		Chart: addedChart([]*repo.Snapshot{{Time: time.Now(), AddedBytes: 5}}, time.Now())}
	p.Chart.Bars[0].Title = evil
	var b strings.Builder
	if err := statusTemplate.Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "<script") || strings.Contains(out, `" onclick`) {
		t.Fatalf("unescaped:\n%s", out)
	}
}

func TestServeRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://bk:secret@db/app": "postgres://bk:xxxxx@db/app",
		"postgres://bk@db/app":        "postgres://bk@db/app",
		"/var/lib/www":                "/var/lib/www",
		"s3:https://s3.example/bkt":   "s3:https://s3.example/bkt",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
