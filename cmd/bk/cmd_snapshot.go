package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/engines/command"
	"github.com/bk-backup/bk/repo"
)

// snapshotResult is the --json document of `bk snapshot`.
type snapshotResult struct {
	ID         string    `json:"id"`
	ShortID    string    `json:"short_id"`
	Name       string    `json:"name"`
	Host       string    `json:"host"`
	Time       time.Time `json:"time"`
	Tags       []string  `json:"tags"`
	Size       int64     `json:"size"`
	AddedBytes int64     `json:"added_bytes"`
	AddedBlobs int64     `json:"added_blobs"`
	// AddedDeltas counts the added blobs stored as deltas.
	AddedDeltas int64 `json:"added_deltas"`
	Chunks      int64 `json:"chunks"`
	// Nodes and UnchangedFiles describe a directory snapshot: its entries,
	// and the files taken from the previous snapshot without reading them.
	Nodes          int64 `json:"nodes,omitempty"`
	UnchangedFiles int64 `json:"unchanged_files,omitempty"`
	// Error says why the source failed; no snapshot was saved then (only in
	// the list of several sources).
	Error string `json:"error,omitempty"`
	// Status is "suspicious" when the stream shrank to under half of the
	// previous good snapshot of the source.
	Status   string  `json:"status,omitempty"`
	Duration float64 `json:"duration_seconds"`
}

func (a *app) snapshotCommand() *cobra.Command {
	var (
		useStdin, allowEmpty, noDelta, failOnShrink bool
		dbPasswordFile                              string
		name, host, timeStr                         string
		tags                                        []string
	)
	c := &cobra.Command{
		Use:   "snapshot (SOURCE... | --stdin --name NAME | --name NAME -- COMMAND [ARGS...])",
		Short: "Store a database dump, stdin or a command's output as a snapshot",
		Long: `Store each SOURCE, standard input, or the standard output of COMMAND, as one
snapshot each.

SOURCE is a database URL without a password: postgres://[user@]host[:port]/db
(pg_dump, plain SQL) or mysql:// / mariadb://[user@]host[:port]/db
(mariadb-dump --single-transaction). The password comes from
--db-password-file (0600), the tool's own files (~/.pgpass, ~/.my.cnf) or
PGPASSWORD / MYSQL_PWD, and reaches the dump tool only through a 0600
temporary file or the environment, never its arguments. A source's snapshot
is named after its database (postgres:app) unless --name is given.

With -- COMMAND, bk runs the command and stores its stdout. If the command exits
non-zero, is killed, or writes nothing (unless --allow-empty), no snapshot is
saved and bk exits with code 3, quoting the exit status and the last lines of
the command's stderr.

Only new data is written to the repository. A new chunk is stored as a delta
against the matching chunk of the previous snapshot with the same --name and
--host when that is much smaller (unless --no-delta or the repository was
created with --no-delta), so tonight's dump costs about what changed.`,
		Example: `  bk snapshot postgres://backup@127.0.0.1/app mysql://root@127.0.0.1/shop
  pg_dump app | bk snapshot --stdin --name app --tag nightly
  bk snapshot --name app -- pg_dump -h 127.0.0.1 -U backup app
  bk snapshot --name redis --json -- redis-cli --rdb -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			var argv, sources []string
			switch {
			case dash > 0:
				return usagef("unexpected arguments before --: %q", args[:dash])
			case dash == 0:
				argv = args
			default:
				sources = args
			}
			modes := 0
			for _, on := range []bool{useStdin, len(argv) > 0, len(sources) > 0} {
				if on {
					modes++
				}
			}
			switch {
			case modes > 1:
				return usagef("give one of SOURCE..., --stdin or -- COMMAND, not both")
			case modes == 0:
				return usagef("nothing to back up: give SOURCE..., --stdin or -- COMMAND")
			case name == "" && len(sources) == 0:
				return usagef("--name is required")
			case name != "" && len(sources) > 1:
				return usagef("--name names one source; with several sources each is named after its database")
			case useStdin && isTerminal(a.stdin):
				return usagef("--stdin is a terminal: pipe a dump into bk, e.g. `pg_dump app | bk snapshot --stdin --name app`")
			}
			// Open every engine first: a bad source fails before anything runs.
			jobs, err := openJobs(cmd.Context(), sources, name, dbPasswordFile)
			if err != nil {
				return err
			}
			if len(argv) > 0 {
				jobs = append(jobs, snapshotJob{name: name, eng: &command.Command{Argv: argv}})
			}
			base := repo.SnapshotOptions{Host: host, Tags: tags, AllowEmpty: allowEmpty, NoDelta: noDelta,
				FailOnShrink: failOnShrink, Program: "bk " + version}
			if timeStr != "" {
				t, err := time.Parse(time.RFC3339, timeStr)
				if err != nil {
					return usagef("--time %q is not RFC 3339 (like 2026-11-22T03:00:00Z)", timeStr)
				}
				base.Time = t
			}
			if base.Host == "" {
				base.Host, _ = os.Hostname()
			}
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			base.Username = a.openOptions().Username
			var results []snapshotResult
			var failed []jobFailure
			err = withLock(cmd.Context(), r, false, func() error {
				if useStdin {
					opts := base
					opts.Name, opts.Progress = name, &repo.Progress{}
					res, err := a.snapshotOne(cmd.Context(), opts, func(opts repo.SnapshotOptions) (*repo.Snapshot, error) {
						return r.SnapshotStream(cmd.Context(), a.stdin, opts)
					})
					results = append(results, res)
					return err
				}
				results, failed = a.snapshotJobs(cmd.Context(), r, base, jobs)
				return nil
			})
			if err != nil {
				return fmt.Errorf("no snapshot saved: %w", err)
			}
			if len(jobs) == 1 && len(failed) == 1 {
				return fmt.Errorf("no snapshot saved: %s: %w", failed[0].name, failed[0].err)
			}
			var saved []snapshotResult
			for _, res := range results {
				if res.Error == "" {
					saved = append(saved, res)
				}
			}
			if a.jsonOut {
				var out any = results
				if len(results) == 1 {
					out = results[0]
				} else {
					list := make([]any, len(results))
					for i, res := range results {
						list[i] = res
						if res.Error != "" {
							list[i] = map[string]string{"name": res.Name, "error": res.Error}
						}
					}
					out = list
				}
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				a.printSnapshots(saved)
			}
			if len(failed) > 0 {
				msgs := make([]string, len(failed))
				for i, f := range failed {
					msgs[i] = fmt.Sprintf("%s: no snapshot saved: %v", f.name, f.err)
				}
				return causeError{msg: fmt.Sprintf("%d of %d sources failed, the other snapshots were saved: %s",
					len(failed), len(jobs), strings.Join(msgs, "; ")), err: failed[0].err}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&useStdin, "stdin", false, "read the stream from standard input")
	f.StringVar(&name, "name", "", "name of the source, e.g. the database (required)")
	f.StringArrayVar(&tags, "tag", nil, "add a tag (repeatable)")
	f.StringVar(&host, "host", "", "host name to record (default: this host)")
	f.StringVar(&timeStr, "time", "", "snapshot time to record, RFC 3339 (default: now)")
	f.BoolVar(&allowEmpty, "allow-empty", false, "store a 0-byte stream instead of failing")
	f.BoolVar(&noDelta, "no-delta", false, "store new chunks whole, not as deltas against the previous snapshot")
	f.StringVar(&dbPasswordFile, "db-password-file", "", "file (0600) with the database password for SOURCE URLs")
	f.BoolVar(&failOnShrink, "fail-on-shrink", false, "fail instead of saving a suspicious snapshot when the dump is under half the previous one")
	return c
}

// snapshotOne runs one snapshot with a progress line and returns its result.
func (a *app) snapshotOne(ctx context.Context, opts repo.SnapshotOptions, run func(repo.SnapshotOptions) (*repo.Snapshot, error)) (snapshotResult, error) {
	start := time.Now()
	pl := a.startProgress(opts.Progress, "read", true)
	snap, err := run(opts)
	pl.done()
	if err != nil {
		return snapshotResult{}, err
	}
	return resultOf(snap, start), nil
}

// resultOf describes a saved snapshot.
func resultOf(snap *repo.Snapshot, start time.Time) snapshotResult {
	res := snapshotResult{ID: snap.ID.String(), ShortID: snap.ID.Short(), Name: snap.Name,
		Host: snap.Host, Time: snap.Time, Tags: snap.Tags, Size: snap.Size, AddedBytes: snap.AddedBytes,
		AddedBlobs: snap.AddedBlobs, AddedDeltas: snap.AddedDeltas, Chunks: snap.Chunks, Status: snap.Status,
		Nodes: snap.Nodes, UnchangedFiles: snap.UnchangedFiles,
		Duration: time.Since(start).Seconds()}
	if res.Tags == nil {
		res.Tags = []string{}
	}
	return res
}

// causeError prints msg but keeps err for errors.Is and As, so the exit
// code follows the cause.
type causeError struct {
	msg string
	err error
}

func (e causeError) Error() string { return e.msg }
func (e causeError) Unwrap() error { return e.err }

// sourceParallelism is how many sources of one bk snapshot run at once.
// Their streams share the batch's packs.
const sourceParallelism = 2

// openJobs opens every source, a folder or an engine URL; a source naming
// every database expands to one job per database. name, if set, names the
// only source; otherwise each is named after its database or path.
func openJobs(ctx context.Context, sources []string, name, dbPasswordFile string) ([]snapshotJob, error) {
	var jobs []snapshotJob
	for _, src := range sources {
		if isTreeSource(src) {
			t, def, err := openTreeSource(src)
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, snapshotJob{name: cmp.Or(name, def), tree: t})
			continue
		}
		eng, def, err := openSource(src, dbPasswordFile)
		if err != nil {
			return nil, err
		}
		list, names, err := expandSource(ctx, eng, cmp.Or(name, def))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if len(list) > 1 && name != "" {
			return nil, usagef("--name names one source; %s expands to %d databases", src, len(list))
		}
		for i := range list {
			jobs = append(jobs, snapshotJob{name: names[i], eng: list[i]})
		}
	}
	return jobs, nil
}

// snapshotJob is one source of bk snapshot: an engine or a folder.
type snapshotJob struct {
	name string
	eng  engines.Engine
	tree *treeSource
}

// jobFailure is a source that failed.
type jobFailure struct {
	name string
	err  error
}

// snapshotWriter stores snapshots: a repository, or a batch of them.
type snapshotWriter interface {
	SnapshotStream(ctx context.Context, rd io.Reader, opts repo.SnapshotOptions) (*repo.Snapshot, error)
	SnapshotTree(ctx context.Context, src repo.NodeSource, opts repo.SnapshotOptions) (*repo.Snapshot, error)
}

// snapshotJobs runs the sources through one batch, sourceParallelism at a
// time, so they share packs. A failing source does not stop the others.
// results holds one entry per job, in order; failed lists the failures.
func (a *app) snapshotJobs(ctx context.Context, r *repo.Repository, base repo.SnapshotOptions, jobs []snapshotJob) ([]snapshotResult, []jobFailure) {
	results := make([]snapshotResult, len(jobs))
	errs := make([]error, len(jobs))
	b, err := r.NewBatch(ctx)
	if err != nil {
		return nil, []jobFailure{{"repository", err}}
	}
	p := &repo.Progress{}
	pl := a.startProgress(p, "read", true)
	sem := make(chan struct{}, sourceParallelism)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			opts := base
			opts.Name, opts.Progress = j.name, p
			start := time.Now()
			var snap *repo.Snapshot
			if j.tree != nil {
				opts.Command = j.tree.Source()
				snap, errs[i] = b.SnapshotTree(ctx, j.tree, opts)
			} else {
				opts.Command = j.eng.Source()
				snap, errs[i] = snapshotDump(ctx, b, j.eng, opts)
			}
			if errs[i] != nil {
				results[i] = snapshotResult{Name: j.name, Tags: []string{}, Error: errs[i].Error()}
				return
			}
			results[i] = resultOf(snap, start)
		}()
	}
	wg.Wait()
	pl.done()
	cerr := b.Close()
	var failed []jobFailure
	for i, err := range errs {
		if err != nil {
			failed = append(failed, jobFailure{jobs[i].name, err})
		}
	}
	if cerr != nil && len(failed) < len(jobs) {
		// Every saved snapshot synced its blobs first; a failure to flush
		// what is left (blobs of failed sources) loses nothing saved.
		fmt.Fprintf(a.stderr, "bk: warning: finishing the batch: %v\n", cerr)
	}
	return results, failed
}

// printSnapshots prints one line per saved snapshot.
func (a *app) printSnapshots(list []snapshotResult) {
	for _, res := range list {
		fmt.Fprintf(a.stdout, "snapshot %s of %s saved: %s read, %s added in %.1fs\n",
			res.ShortID, res.Name, formatBytes(res.Size), formatBytes(res.AddedBytes), res.Duration)
		if res.Status == repo.StatusSuspicious {
			fmt.Fprintf(a.stderr, "bk: warning: snapshot %s is marked suspicious: the dump is less than half the size of the previous one\n", res.ShortID)
		}
	}
}

// snapshotDump joins an engine's dump to the repository through a pipe, so a
// failing dump fails the snapshot and nothing is recorded.
func snapshotDump(ctx context.Context, r snapshotWriter, d engines.Engine, opts repo.SnapshotOptions) (*repo.Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	dumped := make(chan error, 1)
	var manifest *engines.Manifest
	go func() {
		m, err := d.Dump(ctx, pw)
		manifest = m
		pw.CloseWithError(err)
		dumped <- err
	}()
	// The stream ends only after Dump returned, so the manifest is set by
	// the time the repository asks for it.
	opts.Manifest = func() json.RawMessage {
		if manifest == nil {
			return nil
		}
		b, _ := json.Marshal(manifest)
		return b
	}
	snap, err := r.SnapshotStream(ctx, pr, opts)
	if err != nil {
		pr.CloseWithError(err)
		cancel()
	}
	dumpErr := <-dumped
	switch {
	case dumpErr != nil && (err == nil || errors.Is(err, dumpErr)):
		// The source failed first: report its own error, not the pipe's echo.
		return nil, fmt.Errorf("%w: %w", errSource, dumpErr)
	case err != nil:
		return nil, err
	}
	return snap, nil
}
