package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/internal/config"
	"github.com/bk-backup/bk/internal/notify"
	"github.com/bk-backup/bk/repo"
)

// Steps of bk run.
const (
	stepSnapshot = "snapshot"
	stepForget   = "forget"
	stepPrune    = "prune"
	stepCheck    = "check"
)

// jobTag marks the snapshots of a configured job, so its retention and
// metrics find them whatever its sources expand to.
func jobTag(job string) string { return "job:" + job }

// stepResult is one line of the summary of bk run.
type stepResult struct {
	Job      string  `json:"job"`
	Step     string  `json:"step"`
	Status   string  `json:"status"` // ok, failed, skipped, suspicious, dry-run
	Detail   string  `json:"detail,omitempty"`
	Error    string  `json:"error,omitempty"`
	Duration float64 `json:"duration_seconds"`
}

// runReport is the --json document of bk run.
type runReport struct {
	Config  string       `json:"config"`
	DryRun  bool         `json:"dry_run"`
	Steps   []stepResult `json:"steps"`
	Failed  int          `json:"failed"`
	Metrics string       `json:"metrics_file,omitempty"`
}

func (a *app) runCommand() *cobra.Command {
	var (
		only        string
		dryRun      bool
		metricsFile string
	)
	c := &cobra.Command{
		Use:   "run [JOB...] [--only snapshot|forget|prune|check] [--dry-run] [--metrics-file PATH]",
		Short: "Run the jobs of the config file: snapshot, retention, prune and check",
		Long: `Run the configured jobs (all, or the ones named), one after the other. For each
job bk takes its lock (a second run of the same job fails at once, saying so),
runs the "before" hooks (a failing one skips the job), snapshots every source
(tagged job:NAME), then applies the job's keep_* policy and prunes, unless the
job has a prune_schedule of its own; "after" hooks always run once "before"
ran, "on_error" hooks when the job failed. --only runs one step: snapshot,
forget (retention without reclaiming space), prune (retention and reclaiming)
or check (the structural check, plus read_data_subset and the restore drills
the job's [check] asks for).

Hooks are run with /bin/sh -c, with a timeout (hook_timeout, default 5m), and
get BK_JOB, BK_HOOK, BK_STATUS, BK_SOURCES, BK_SNAPSHOT_ID, BK_SNAPSHOT_IDS,
BK_BYTES, BK_ADDED and BK_ERROR. Notifications (webhook, healthchecks, ntfy,
email) are sent after each job; their failures are reported, never fatal.

One failing job does not stop the others. bk prints one summary table and
exits 1 when anything failed. --metrics-file writes Prometheus metrics for
node_exporter's textfile collector.`,
		Example: `  bk --config /etc/bk/bk.toml run
  bk run app --only check
  bk run --dry-run
  bk run --metrics-file /var/lib/node_exporter/textfile/bk.prom`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if only != "" && !slices.Contains([]string{stepSnapshot, stepForget, stepPrune, stepCheck}, only) {
				return usagef("--only %q: give snapshot, forget, prune or check", only)
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			jobs, err := selectJobs(cfg, args)
			if err != nil {
				return err
			}
			rep := &runReport{Config: cfg.Path, DryRun: dryRun, Steps: []stepResult{}}
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			n := notify.New(a.logger())
			for _, job := range jobs {
				rep.Steps = append(rep.Steps, a.runJob(cmd.Context(), r, n, job, only, dryRun)...)
			}
			if metricsFile != "" && !dryRun {
				res := stepResult{Job: "-", Step: "metrics", Status: "ok", Detail: metricsFile}
				if err := a.writeMetrics(cmd.Context(), r, jobs, metricsFile); err != nil {
					res.Status, res.Error = "failed", err.Error()
				}
				rep.Steps = append(rep.Steps, res)
				rep.Metrics = metricsFile
			}
			for _, s := range rep.Steps {
				if s.Status == "failed" {
					rep.Failed++
				}
			}
			if a.jsonOut {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printRunSummary(rep)
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%s failed (see the summary above)", plural(rep.Failed, "step"))
			}
			return nil
		},
	}
	c.Flags().StringVar(&only, "only", "", "run only this step: snapshot, forget, prune or check")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would run; change nothing and run no hooks")
	c.Flags().StringVar(&metricsFile, "metrics-file", "", "write Prometheus metrics to this file (atomically)")
	return c
}

// loadConfig loads the config file and makes its repository settings the
// defaults of the global flags.
func (a *app) loadConfig() (*config.Config, error) {
	path, err := a.configFile()
	if err != nil {
		return nil, usageError{err}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	rc := cfg.Repository
	if a.repoPath == "" {
		a.repoPath = rc.Path
	}
	if a.passwordFile == "" && a.passwordCmd == "" {
		a.passwordFile, a.passwordCmd = rc.PasswordFile, rc.PasswordCommand
	}
	if a.cacheDir == "" {
		a.cacheDir = rc.CacheDir
	}
	s := rc.S3
	a.s3.region = cmp.Or(a.s3.region, s.Region)
	a.s3.lookup = cmp.Or(a.s3.lookup, s.Lookup)
	a.s3.caFile = cmp.Or(a.s3.caFile, s.CAFile)
	a.s3.storageClass = cmp.Or(a.s3.storageClass, s.StorageClass)
	if s.Timeout > 0 {
		a.s3.timeout = s.Timeout
	}
	return cfg, nil
}

// selectJobs returns the named jobs, or all.
func selectJobs(cfg *config.Config, names []string) ([]*config.Job, error) {
	if len(names) == 0 {
		if len(cfg.Jobs) == 0 {
			return nil, usagef("%s has no jobs", cfg.Path)
		}
		return cfg.Jobs, nil
	}
	var out []*config.Job
	for _, name := range names {
		i := slices.IndexFunc(cfg.Jobs, func(j *config.Job) bool { return j.Name == name })
		if i < 0 {
			var known []string
			for _, j := range cfg.Jobs {
				known = append(known, j.Name)
			}
			return nil, usagef("no job %q in %s (jobs: %s)", name, cfg.Path, strings.Join(known, ", "))
		}
		out = append(out, cfg.Jobs[i])
	}
	return out, nil
}

// jobRun is the state of one job of bk run.
type jobRun struct {
	a      *app
	job    *config.Job
	r      *repo.Repository
	dryRun bool
	steps  []stepResult
	snaps  []snapshotResult // this run's snapshot results
	failed bool
	errs   []string
}

func (j *jobRun) add(s stepResult, start time.Time) {
	s.Job, s.Duration = j.job.Name, time.Since(start).Seconds()
	if s.Status == "failed" {
		j.failed = true
		j.errs = append(j.errs, s.Step+": "+s.Error)
	}
	j.steps = append(j.steps, s)
}

// runJob runs the steps of one job and returns their results.
func (a *app) runJob(ctx context.Context, r *repo.Repository, n *notify.Notifier, job *config.Job, only string, dryRun bool) []stepResult {
	j := &jobRun{a: a, job: job, r: r, dryRun: dryRun}
	log := a.logger().With("job", job.Name)
	started := time.Now()
	unlock, err := a.jobLock(job.Name)
	if err != nil {
		j.add(stepResult{Step: "lock", Status: "failed", Error: err.Error()}, started)
		return j.steps
	}
	defer unlock()

	steps := []string{only}
	if only == "" {
		steps = []string{stepSnapshot}
		if job.Keep.Any() && job.PruneSchedule == "" {
			steps = append(steps, stepPrune)
		}
	}
	targets := notifyTargets(job)
	if !dryRun {
		_ = n.Start(ctx, targets, job.Name)
	}
	ranBefore := false
	if !dryRun {
		t := time.Now()
		if err := j.hooks(ctx, "before", job.Before); err != nil {
			j.add(stepResult{Step: "before", Status: "failed", Error: err.Error()}, t)
			for _, s := range steps {
				j.add(stepResult{Step: s, Status: "skipped", Detail: "the before hook failed"}, time.Now())
			}
		} else {
			ranBefore = true
		}
	}
	if ranBefore || dryRun {
		for _, s := range steps {
			log.Info("step", "step", s)
			switch s {
			case stepSnapshot:
				j.snapshot(ctx)
			case stepForget:
				j.forget(ctx, false)
			case stepPrune:
				j.forget(ctx, true)
			case stepCheck:
				j.check(ctx)
			}
		}
	}
	if ranBefore {
		t := time.Now()
		if err := j.hooks(ctx, "after", job.After); err != nil {
			j.add(stepResult{Step: "after", Status: "failed", Error: err.Error()}, t)
		}
		if j.failed {
			if err := j.hooks(ctx, "on_error", job.OnError); err != nil {
				j.add(stepResult{Step: "on_error", Status: "failed", Error: err.Error()}, time.Now())
			}
		}
	}
	if !dryRun {
		ev := j.event(started)
		if err := n.Send(ctx, targets, ev); err != nil {
			log.Warn("notification failed", "error", err)
			j.steps = append(j.steps, stepResult{Job: job.Name, Step: "notify", Status: "warning", Error: err.Error()})
		}
	}
	return j.steps
}

// status is the job's outcome for hooks and notifications.
func (j *jobRun) status() string {
	if j.failed {
		return notify.StatusFailure
	}
	for _, s := range j.snaps {
		if s.Status == repo.StatusSuspicious {
			return notify.StatusSuspicious
		}
	}
	return notify.StatusSuccess
}

func (j *jobRun) event(started time.Time) notify.Event {
	host, _ := os.Hostname()
	ev := notify.Event{Job: j.job.Name, Host: host, Status: j.status(), Started: started, Finished: time.Now(),
		Error: strings.Join(j.errs, "; ")}
	for _, s := range j.snaps {
		ev.Snapshots = append(ev.Snapshots, notify.Snapshot{Source: s.Name, Name: s.Name, ID: s.ID,
			Status: s.Status, Bytes: s.Size, Added: s.AddedBytes, Error: s.Error})
	}
	return ev
}

func notifyTargets(job *config.Job) notify.Targets {
	t := notify.Targets{Webhook: job.Notify.Webhook, Healthchecks: job.Notify.Healthchecks, Ntfy: job.Notify.Ntfy, On: job.Notify.On}
	if e := job.Notify.Email; e != nil {
		em := &notify.Email{SMTP: e.SMTP, From: e.From, To: e.To, Username: e.Username, StartTLS: e.StartTLS}
		if e.PasswordFile != "" {
			if b, err := readPasswordFile(e.PasswordFile); err == nil {
				em.Password = string(b)
			}
		}
		t.Email = em
	}
	return t
}

// snapshot snapshots every source of the job through one batch.
func (j *jobRun) snapshot(ctx context.Context) {
	start := time.Now()
	a, job := j.a, j.job
	jobs, err := openJobs(ctx, job.Sources, "", job.DBPasswordFile)
	if err != nil {
		j.add(stepResult{Step: stepSnapshot, Status: "failed", Error: err.Error()}, start)
		return
	}
	if j.dryRun {
		var names []string
		for _, s := range jobs {
			names = append(names, s.name)
		}
		j.add(stepResult{Step: stepSnapshot, Status: "dry-run", Detail: "would snapshot " + strings.Join(names, ", ")}, start)
		return
	}
	host, _ := os.Hostname()
	base := repo.SnapshotOptions{Host: host, Tags: append(slices.Clone(job.Tags), jobTag(job.Name)),
		Program: "bk " + version, Username: a.openOptions().Username}
	var results []snapshotResult
	var failed []jobFailure
	err = withLock(ctx, j.r, false, func() error {
		results, failed = a.snapshotJobs(ctx, j.r, base, jobs)
		return nil
	})
	j.snaps = results
	var read, added int64
	suspicious := 0
	for _, s := range results {
		read += s.Size
		added += s.AddedBytes
		if s.Status == repo.StatusSuspicious {
			suspicious++
		}
	}
	res := stepResult{Step: stepSnapshot, Status: "ok",
		Detail: fmt.Sprintf("%d of %d sources, %s read, %s added", len(results)-len(failed), len(jobs), formatBytes(read), formatBytes(added))}
	switch {
	case err != nil:
		res.Status, res.Error = "failed", err.Error()
	case len(failed) > 0:
		msgs := make([]string, len(failed))
		for i, f := range failed {
			msgs[i] = f.name + ": " + f.err.Error()
		}
		res.Status, res.Error = "failed", strings.Join(msgs, "; ")
	case suspicious > 0:
		res.Status = "suspicious"
		res.Detail += fmt.Sprintf(", %d suspicious (under half the previous size)", suspicious)
	}
	j.add(res, start)
}

// forget applies the job's keep_* policy to its snapshots on this host and,
// with prune, reclaims space, under the exclusive lock.
func (j *jobRun) forget(ctx context.Context, prune bool) {
	start := time.Now()
	step := stepForget
	if prune {
		step = stepPrune
	}
	p, err := keepPolicy(j.job.Keep)
	if err != nil {
		j.add(stepResult{Step: step, Status: "failed", Error: err.Error()}, start)
		return
	}
	if p == nil && !prune {
		j.add(stepResult{Step: step, Status: "skipped", Detail: "the job has no keep_* policy"}, start)
		return
	}
	host, _ := os.Hostname()
	var removed, kept int
	var plan *repo.PrunePlan
	err = withLock(ctx, j.r, !j.dryRun, func() error {
		var ids []crypt.ID
		if p != nil {
			filter := repo.Filter{Host: host, Tags: []string{jobTag(j.job.Name)}}
			plans, remove, err := planPolicy(ctx, j.r, *p, filter)
			if err != nil {
				return err
			}
			for _, g := range plans {
				kept += len(g.Kept())
			}
			ids = remove
		}
		removed = len(ids)
		var opts *repo.PruneOptions
		if prune {
			opts = &repo.PruneOptions{MaxUnused: 0.05}
		}
		var err error
		plan, err = removeAndPrune(ctx, j.r, ids, opts, j.dryRun)
		return err
	})
	res := stepResult{Step: step, Status: "ok", Detail: fmt.Sprintf("removed %d snapshots, kept %d", removed, kept)}
	if j.dryRun {
		res.Status, res.Detail = "dry-run", fmt.Sprintf("would remove %d snapshots, keep %d", removed, kept)
	}
	if plan != nil {
		res.Detail += fmt.Sprintf("; %s", pruneSummary(plan))
	}
	if err != nil {
		res.Status, res.Error = "failed", err.Error()
	}
	j.add(res, start)
}

// check runs the structural check, the read-data subset and the restore
// drills the job asks for, and records the result for the metrics.
func (j *jobRun) check(ctx context.Context) {
	start := time.Now()
	c := j.job.Check
	if j.dryRun {
		detail := "would check the repository structure"
		if c.ReadDataSubset != "" {
			detail += ", read data subset " + c.ReadDataSubset
		}
		if c.RestoreTest {
			detail += ", run restore drills"
		}
		j.add(stepResult{Step: stepCheck, Status: "dry-run", Detail: detail}, start)
		return
	}
	var rep *repo.CheckReport
	err := withLock(ctx, j.r, false, func() error {
		var err error
		rep, err = j.r.Check(ctx, repo.CheckOptions{Subset: c.ReadDataSubset})
		return err
	})
	res := stepResult{Step: stepCheck, Status: "ok"}
	switch {
	case err != nil:
		res.Status, res.Error = "failed", err.Error()
	case !rep.OK():
		res.Status, res.Error = "failed", fmt.Sprintf("check found %s: %s", plural(len(rep.Problems), "error"), rep.Problems[0].What)
	default:
		res.Detail = fmt.Sprintf("%s, %s read", plural(rep.Snapshots, "snapshot"), formatBytes(rep.BytesRead))
	}
	if res.Status == "ok" && c.RestoreTest {
		scratch, err := parseScratch(c.Scratch)
		var drills *drillReport
		if err == nil {
			err = withLock(ctx, j.r, false, func() error {
				var err error
				drills, err = runDrills(ctx, j.r, "", scratch, j.job.DBPasswordFile)
				return err
			})
		}
		switch {
		case err != nil:
			res.Status, res.Error = "failed", "restore drills: "+err.Error()
		case drills.Failed > 0:
			res.Status, res.Error = "failed", fmt.Sprintf("%s failed", plural(drills.Failed, "restore drill"))
		default:
			res.Detail += fmt.Sprintf("; restore drills: %d passed, %d skipped", drills.Passed, drills.Skipped)
		}
	}
	j.add(res, start)
	j.a.recordCheck(j.job.Name, res.Status == "ok")
}
