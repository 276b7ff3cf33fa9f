package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/repo"
)

// restoreResult is the --json document of `bk restore`.
type restoreResult struct {
	Snapshot string  `json:"snapshot"`
	Name     string  `json:"name"`
	Bytes    int64   `json:"bytes"`
	Target   string  `json:"target,omitempty"`
	Files    int64   `json:"files,omitempty"` // files of a directory snapshot
	Duration float64 `json:"duration_seconds"`
}

func (a *app) restoreCommand() *cobra.Command {
	var (
		f              repo.Filter
		target, to     string
		toStdout       bool
		force          bool
		dbPasswordFile string
		includes       []string
	)
	c := &cobra.Command{
		Use:   "restore SNAPSHOT (--target DIR | --stdout | --to URL)",
		Short: "Restore a snapshot to a folder, standard output or a database",
		Long: `Restore a snapshot. SNAPSHOT is an ID, a unique ID prefix, or "latest" (the
newest snapshot that matches --name, --host and --tag).

Every blob is checked against its ID and the whole stream against the hash
recorded in the snapshot. On any mismatch bk exits non-zero naming the pack and
blob. With --target, the stream is written to DIR/NAME through a temporary file
that is renamed only once everything verified; an existing file is never
overwritten. With --to, the dump is loaded into a database through its
engine's client (postgres://, mysql://, sqlite:///): a missing database is
created, one that already has tables is refused unless --force, and the load
stops at the first error. Redis dumps restore to a file with --target.

A directory snapshot (of file:///path or a folder) restores with --target DIR:
its tree is recreated inside DIR with modes, times, symlinks and empty
folders (owners too when bk runs as root). --include GLOB (repeatable)
restores only the paths that match, or lie under a folder that matches;
patterns use shell syntax against the path in the snapshot, as "bk ls" shows
it. Each file is written through a temporary file and renamed once its
content verified; existing files of the same name are replaced.`,
		Example: `  bk restore latest --name app --target /srv/restore
  bk restore 3fa2c1d9 --stdout | psql app_copy
  bk restore latest --name app --stdout > /dev/null   # a full verification
  bk restore latest --name postgres:app --to postgres://127.0.0.1/app_restored
  bk restore latest --name dir:/srv/www --target /tmp/www --include 'uploads/2026-*'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, on := range []bool{target != "", toStdout, to != ""} {
				if on {
					n++
				}
			}
			if n != 1 {
				return usagef("give exactly one of --target DIR, --stdout or --to URL")
			}
			var into engines.Restorer
			if to != "" {
				var err error
				if into, err = restorer(to, dbPasswordFile); err != nil {
					return err
				}
			}
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			start := time.Now()
			res := restoreResult{}
			err = withLock(cmd.Context(), r, false, func() error {
				snap, err := r.FindSnapshot(cmd.Context(), args[0], f)
				if err != nil {
					return err
				}
				res.Snapshot, res.Name = snap.ID.String(), snap.Name
				switch {
				case snap.Kind == repo.KindTree && target == "":
					return usagef("snapshot %s is a directory tree: restore it with --target DIR", snap.ID.Short())
				case snap.Kind != repo.KindTree && len(includes) > 0:
					return usagef("--include selects paths of a directory snapshot; %s is a stream", snap.ID.Short())
				}
				p := &repo.Progress{}
				pl := a.startProgress(p, "restored", false)
				defer pl.done()
				if into != nil {
					res.Target = to
					err := restoreInto(cmd.Context(), r, snap, into, force, p)
					res.Bytes = p.Bytes.Load()
					return err
				}
				if toStdout {
					w := bufio.NewWriterSize(a.stdout, 1<<20)
					if err := r.RestoreStream(cmd.Context(), snap, w, p); err != nil {
						return err
					}
					res.Bytes = p.Bytes.Load()
					return w.Flush()
				}
				if snap.Kind == repo.KindTree {
					want, err := includeFilter("", includes)
					if err != nil {
						return err
					}
					if len(includes) == 0 {
						want = nil
					}
					st, err := restoreTree(cmd.Context(), r, snap, target, want, p)
					res.Target, res.Bytes = target, p.Bytes.Load()
					if st != nil {
						res.Files = st.Files
						for _, path := range st.Skipped {
							fmt.Fprintf(a.stderr, "bk: warning: %s not restored: this system cannot create it\n", path)
						}
					}
					return err
				}
				res.Target, err = restoreToFile(cmd, r, snap, target, p)
				res.Bytes = p.Bytes.Load()
				return err
			})
			if err != nil {
				return fmt.Errorf("restore failed: %w", err)
			}
			res.Duration = time.Since(start).Seconds()
			if a.jsonOut && !toStdout {
				return a.printJSON(res)
			}
			if a.jsonOut {
				return a.printJSONTo(a.stderr, res)
			}
			if !toStdout {
				fmt.Fprintf(a.stdout, "restored snapshot %s (%s) to %s in %.1fs\n",
					res.Snapshot[:8], formatBytes(res.Bytes), res.Target, res.Duration)
			}
			return nil
		},
	}
	c.Flags().StringVar(&target, "target", "", "write the stream into this folder as a file named after the snapshot, or a directory snapshot's tree")
	c.Flags().StringArrayVar(&includes, "include", nil, "directory snapshots: restore only paths matching this glob (repeatable)")
	c.Flags().BoolVar(&toStdout, "stdout", false, "write the stream to standard output")
	c.Flags().StringVar(&to, "to", "", "load the dump into this database (postgres://host/newdb, mysql://host/newdb)")
	c.Flags().BoolVar(&force, "force", false, "with --to: load into a database that already has tables")
	c.Flags().StringVar(&dbPasswordFile, "db-password-file", "", "with --to: file (0600) with the database password")
	addFilterFlags(c, &f)
	return c
}

// restoreInto streams a snapshot into a database through its engine. A
// stream that fails verification fails the load too (the engine loads in
// one transaction where the database allows).
func restoreInto(ctx context.Context, r *repo.Repository, snap *repo.Snapshot, into engines.Restorer, force bool, p *repo.Progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	loaded := make(chan error, 1)
	go func() {
		err := into.Restore(ctx, pr, force)
		pr.CloseWithError(err)
		loaded <- err
	}()
	err := r.RestoreStream(ctx, snap, pw, p)
	pw.CloseWithError(err)
	if err != nil {
		cancel()
		if lerr := <-loaded; lerr != nil && !errors.Is(lerr, context.Canceled) {
			// The database refused the load first; that is the error.
			return fmt.Errorf("load into the database: %w", lerr)
		}
		return err
	}
	if err := <-loaded; err != nil {
		return fmt.Errorf("load into the database: %w", err)
	}
	return nil
}

// dumpFileName names the file a snapshot restores to: its name, made safe
// for a file name, with the extension of its engine's dumps.
func dumpFileName(snap *repo.Snapshot) string {
	name := filepath.Base(filepath.Clean("/" + snap.Name))
	if name == "/" || name == "." {
		return snap.ID.String()[:8]
	}
	var m struct{ Engine string }
	_ = json.Unmarshal(snap.Manifest, &m)
	ext := map[string]string{"postgres": ".sql", "mysql": ".sql", "redis": ".rdb"}[m.Engine]
	if ext == "" {
		return name // a stream or command: as named; a SQLite name ends in .db
	}
	name = strings.NewReplacer(":", "_").Replace(name)
	if !strings.HasSuffix(name, ext) {
		name += ext
	}
	return name
}

// restoreToFile restores into dir/<name> through a temporary file that is
// renamed only after the whole stream verified.
func restoreToFile(cmd *cobra.Command, r *repo.Repository, snap *repo.Snapshot, dir string, p *repo.Progress) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create target folder: %w", err)
	}
	name := dumpFileName(snap)
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("%s already exists; restore into an empty folder or remove it", final)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".bk-restore-*")
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := r.RestoreStream(cmd.Context(), snap, w, p); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("rename into place: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return final, nil
}
