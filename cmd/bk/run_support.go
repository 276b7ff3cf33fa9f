package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bk-backup/bk/internal/config"
	"github.com/bk-backup/bk/internal/metrics"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/store"
)

// defaultHookTimeout bounds a hook when the job sets no hook_timeout.
const defaultHookTimeout = 5 * time.Minute

// keepPolicy turns a job's keep_* settings into a forget policy, or nil.
func keepPolicy(k config.Keep) (*repo.Policy, error) {
	if !k.Any() {
		return nil, nil
	}
	p := repo.Policy{Last: k.Last, Hourly: k.Hourly, Daily: k.Daily, Weekly: k.Weekly, Monthly: k.Monthly,
		Yearly: k.Yearly, Tags: k.Tags}
	if k.Within != "" {
		d, err := repo.ParseDuration(k.Within)
		if err != nil {
			return nil, fmt.Errorf("keep_within: %w", err)
		}
		p.Within = d
	}
	return &p, nil
}

// pruneSummary describes a prune plan in one phrase.
func pruneSummary(p *repo.PrunePlan) string {
	if p.Empty() {
		return "nothing to prune"
	}
	return fmt.Sprintf("%d packs deleted, %d repacked, %s reclaimed", len(p.Delete)+len(p.Orphans), len(p.Repack), formatBytes(p.Reclaim))
}

// stateDir is where bk run keeps job locks and check results: the
// BK_STATE_DIR variable, $XDG_STATE_HOME/bk or ~/.local/state/bk.
func stateDir() string {
	if d := os.Getenv("BK_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "bk")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "bk")
	}
	return filepath.Join(os.TempDir(), "bk-state")
}

// jobLock takes the job's lock on this machine: a second bk run of the
// same job fails at once, saying which process holds it.
func (a *app) jobLock(job string) (func(), error) {
	dir := filepath.Join(stateDir(), "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("job lock: %w", err)
	}
	path := filepath.Join(dir, job+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("job lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("job %s is already running (%s holds %s); wait for it to finish",
				job, strings.TrimSpace(string(holder)), path)
		}
		return nil, fmt.Errorf("job lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d\n", os.Getpid())), 0)
	return func() { _ = f.Close() }, nil
}

// hooks runs a job's hook commands of one kind, in order, each with
// /bin/sh -c, the run's environment and the job's timeout; the first that
// fails or times out stops them.
func (j *jobRun) hooks(ctx context.Context, kind string, cmds []string) error {
	timeout := j.job.HookTimeout
	if timeout <= 0 {
		timeout = defaultHookTimeout
	}
	for _, c := range cmds {
		if err := j.hook(ctx, kind, c, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (j *jobRun) hook(ctx context.Context, kind, command string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), j.hookEnv(kind)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	j.a.logger().Info("hook", "job", j.job.Name, "hook", kind, "command", command, "error", err)
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("%s hook %q did not finish within %s and was killed", kind, command, timeout)
	case err != nil:
		tail := strings.TrimSpace(out.String())
		if len(tail) > 300 {
			tail = "..." + tail[len(tail)-300:]
		}
		if tail != "" {
			return fmt.Errorf("%s hook %q: %v: %s", kind, command, err, tail)
		}
		return fmt.Errorf("%s hook %q: %v", kind, command, err)
	}
	return nil
}

// hookEnv describes the run to a hook.
func (j *jobRun) hookEnv(kind string) []string {
	var ids, sources []string
	var read, added int64
	for _, s := range j.snaps {
		sources = append(sources, s.Name)
		if s.ID != "" {
			ids = append(ids, s.ID)
		}
		read += s.Size
		added += s.AddedBytes
	}
	if len(sources) == 0 {
		sources = j.job.Sources
	}
	status := ""
	if kind != "before" {
		status = j.status()
	}
	first := ""
	if len(ids) > 0 {
		first = ids[0]
	}
	return []string{"BK_JOB=" + j.job.Name, "BK_HOOK=" + kind, "BK_STATUS=" + status,
		"BK_SOURCES=" + strings.Join(sources, " "), "BK_SNAPSHOT_ID=" + first, "BK_SNAPSHOT_IDS=" + strings.Join(ids, " "),
		"BK_BYTES=" + strconv.FormatInt(read, 10), "BK_ADDED=" + strconv.FormatInt(added, 10),
		"BK_ERROR=" + strings.Join(j.errs, "; ")}
}

// checkRecord is the last check result of a job, kept for the metrics.
type checkRecord struct {
	Time time.Time `json:"time"`
	OK   bool      `json:"ok"`
}

func checkRecordPath(job string) string { return filepath.Join(stateDir(), "checks", job+".json") }

// recordCheck keeps the result of a job's check; failing to is only logged.
func (a *app) recordCheck(job string, ok bool) {
	path := checkRecordPath(job)
	b, _ := json.Marshal(checkRecord{Time: time.Now().UTC(), OK: ok})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			a.logger().Warn("record the check result", "job", job, "error", err)
		}
	}
}

// writeMetrics writes the Prometheus metrics of the jobs to path
// atomically (see gatherMetrics).
func (a *app) writeMetrics(ctx context.Context, r *repo.Repository, jobs []*config.Job, path string) error {
	ms, err := a.gatherMetrics(ctx, r, jobs)
	if err != nil {
		return err
	}
	return metrics.WriteFile(path, ms)
}

// gatherMetrics reads the repository and returns the metrics of the jobs:
// per source, the newest good snapshot of this host; per repository, its
// size and snapshot count.
func (a *app) gatherMetrics(ctx context.Context, r *repo.Repository, jobs []*config.Job) (metrics.Snapshot, error) {
	v, err := readRepoView(ctx, r)
	if err != nil {
		return metrics.Snapshot{}, err
	}
	return v.metrics(jobs), nil
}

// repoView is what the metrics and bk serve need of a repository, read at
// one time: every snapshot and the stored size.
type repoView struct {
	Location  string
	Snapshots []*repo.Snapshot // oldest first
	PackBytes int64
	Host      string // this host, whose snapshots the jobs' state counts
	Read      time.Time
}

// readRepoView lists the snapshots and packs of r.
func readRepoView(ctx context.Context, r *repo.Repository) (*repoView, error) {
	host, _ := os.Hostname()
	v := &repoView{Location: r.Backend().Location(), Host: host, Read: time.Now()}
	var err error
	if v.Snapshots, err = r.Snapshots(ctx, repo.Filter{}); err != nil {
		return nil, err
	}
	err = r.Backend().List(ctx, store.PackFile, func(fi store.FileInfo) error { v.PackBytes += fi.Size; return nil })
	if err != nil {
		return nil, err
	}
	return v, nil
}

// jobSnapshots returns the snapshots of job taken on v.Host, oldest first.
func (v *repoView) jobSnapshots(job string) []*repo.Snapshot {
	var out []*repo.Snapshot
	for _, s := range v.Snapshots {
		if s.Host == v.Host && s.HasTag(jobTag(job)) {
			out = append(out, s)
		}
	}
	return out
}

// loadCheckRecord returns the last check result of job, or nil.
func loadCheckRecord(job string) *checkRecord {
	b, err := os.ReadFile(checkRecordPath(job))
	if err != nil {
		return nil
	}
	var c checkRecord
	if json.Unmarshal(b, &c) != nil {
		return nil
	}
	return &c
}

// metrics builds the metrics of the jobs from v and the recorded checks.
func (v *repoView) metrics(jobs []*config.Job) metrics.Snapshot {
	ms := metrics.Snapshot{Generated: v.Read}
	for _, job := range jobs {
		rec := loadCheckRecord(job.Name)
		bySource := map[string]*metrics.Source{}
		var order []string
		for _, s := range v.jobSnapshots(job.Name) { // oldest first
			m := bySource[s.Name]
			if m == nil {
				m = &metrics.Source{Job: job.Name, Source: s.Name}
				bySource[s.Name] = m
				order = append(order, s.Name)
			}
			m.Suspicious = s.Status == repo.StatusSuspicious
			if s.Status == "" {
				m.LastSuccess, m.LastDuration, m.BytesRead, m.BytesAdded = s.Time, s.Duration, s.Size, s.AddedBytes
				m.DedupRatio = float64(s.Size) / float64(max(s.AddedBytes, 1))
			}
		}
		for _, name := range order {
			m := bySource[name]
			if rec != nil {
				ok := rec.OK
				m.LastCheckOK, m.LastCheckTime = &ok, rec.Time
			}
			ms.Sources = append(ms.Sources, *m)
		}
	}
	ms.Repositories = []metrics.Repository{{Location: v.Location, SizeBytes: v.PackBytes, Snapshots: len(v.Snapshots)}}
	return ms
}

// printRunSummary prints the table of bk run.
func (a *app) printRunSummary(rep *runReport) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTEP\tSTATUS\tTIME\tDETAIL")
	for _, s := range rep.Steps {
		detail := s.Detail
		if s.Error != "" {
			detail = strings.TrimSpace(detail + " " + s.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fs\t%s\n", s.Job, s.Step, s.Status, s.Duration, detail)
	}
	_ = tw.Flush()
}

// logger returns the process's structured logger: text on a terminal,
// JSON with --log-json, at --log-level.
func (a *app) logger() *slog.Logger {
	if a.log != nil {
		return a.log
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmp.Or(a.logLevel, "warn"))); err != nil {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	if a.logJSON {
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	} else {
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	}
	return a.log
}
