package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
			type job struct {
				name string
				eng  engines.Engine
				tree *treeSource
			}
			var jobs []job
			for _, src := range sources {
				if isTreeSource(src) {
					t, def, err := openTreeSource(src)
					if err != nil {
						return err
					}
					jobs = append(jobs, job{name: cmp.Or(name, def), tree: t})
					continue
				}
				eng, def, err := openSource(src, dbPasswordFile)
				if err != nil {
					return err
				}
				list, names, err := expandSource(cmd.Context(), eng, cmp.Or(name, def))
				if err != nil {
					return fmt.Errorf("%s: %w", src, err)
				}
				if len(list) > 1 && name != "" {
					return usagef("--name names one source; %s expands to %d databases", src, len(list))
				}
				for i := range list {
					jobs = append(jobs, job{name: names[i], eng: list[i]})
				}
			}
			if len(argv) > 0 {
				jobs = append(jobs, job{name: name, eng: &command.Command{Argv: argv}})
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
				for _, j := range jobs {
					opts := base
					opts.Name, opts.Progress = j.name, &repo.Progress{}
					res, err := a.snapshotOne(cmd.Context(), opts, func(opts repo.SnapshotOptions) (*repo.Snapshot, error) {
						if j.tree != nil {
							opts.Command = j.tree.Source()
							return snapshotTree(cmd.Context(), r, j.tree, opts)
						}
						opts.Command = j.eng.Source()
						return snapshotDump(cmd.Context(), r, j.eng, opts)
					})
					if err != nil {
						return fmt.Errorf("%s: %w", opts.Name, err)
					}
					results = append(results, res)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("no snapshot saved: %w", err)
			}
			if a.jsonOut {
				if len(results) == 1 {
					return a.printJSON(results[0])
				}
				return a.printJSON(results)
			}
			for _, res := range results {
				fmt.Fprintf(a.stdout, "snapshot %s of %s saved: %s read, %s added in %.1fs\n",
					res.ShortID, res.Name, formatBytes(res.Size), formatBytes(res.AddedBytes), res.Duration)
				if res.Status == repo.StatusSuspicious {
					fmt.Fprintf(a.stderr, "bk: warning: snapshot %s is marked suspicious: the dump is less than half the size of the previous one\n", res.ShortID)
				}
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
	res := snapshotResult{ID: snap.ID.String(), ShortID: snap.ID.Short(), Name: snap.Name,
		Host: snap.Host, Time: snap.Time, Tags: snap.Tags, Size: snap.Size, AddedBytes: snap.AddedBytes,
		AddedBlobs: snap.AddedBlobs, AddedDeltas: snap.AddedDeltas, Chunks: snap.Chunks, Status: snap.Status,
		Nodes: snap.Nodes, UnchangedFiles: snap.UnchangedFiles,
		Duration: time.Since(start).Seconds()}
	if res.Tags == nil {
		res.Tags = []string{}
	}
	return res, nil
}

// snapshotTree stores a directory tree. A failure to read the tree is a
// source failure (exit code 3): treeSource marks its errors.
func snapshotTree(ctx context.Context, r *repo.Repository, t *treeSource, opts repo.SnapshotOptions) (*repo.Snapshot, error) {
	return r.SnapshotTree(ctx, t, opts)
}

// snapshotDump joins an engine's dump to the repository through a pipe, so a
// failing dump fails the snapshot and nothing is recorded.
func snapshotDump(ctx context.Context, r *repo.Repository, d engines.Engine, opts repo.SnapshotOptions) (*repo.Snapshot, error) {
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
