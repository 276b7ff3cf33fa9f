package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/repo"
)

// checkResult is the --json document of `bk check`.
type checkResult struct {
	*repo.CheckReport
	Duration float64 `json:"duration_seconds"`
}

func (a *app) checkCommand() *cobra.Command {
	var (
		opts           repo.CheckOptions
		readData       bool
		restoreTest    bool
		scratch        []string
		dbPasswordFile string
	)
	c := &cobra.Command{
		Use:   "check [--read-data | --read-data-subset N/M | --read-data-subset P%] [--snapshot ID] | --restore-test [--scratch URL]... [SNAPSHOT]",
		Short: "Verify the repository: its structure, and with --read-data every byte",
		Long: `Verify the repository and report every problem found.

The default, structural check reads only metadata: every key file parses,
every snapshot and index file loads, every pack the index lists exists with
the recorded size, every blob a snapshot needs (delta bases included) is
indexed, and every pack header agrees with the index.

--read-data also downloads every pack, checks it against its name, and
decrypts, decompresses and verifies every blob in it; a delta is decoded
against its base. A pack that fails is read a second time: if that read is
clean, the failure is reported as a flaky read (a warning, pointing at the
storage or the network), otherwise as corruption.

--read-data-subset reads a slice of the packs instead: N/M reads the packs
whose ID starts with a byte equal to N-1 modulo M, so running 1/M, 2/M, ...,
M/M (one per night, say) reads every pack once; P% reads a random sample of
about P percent of the packs, and prints the seed to repeat it with --seed.
--snapshot limits every part of the check to what one snapshot needs.

Each problem is printed on one line, naming the pack, the blob and the
snapshots that need it (for a delta base, every snapshot whose delta chains
pass through it). Packs that no index lists are warnings: leftovers of
interrupted writes, which prune removes. The last line sums up what was
checked. The exit status is 0 when no errors were found (warnings allowed),
and 1 otherwise.

To recover from damage: 'bk repair index' rebuilds lost or damaged index
files from the pack headers; 'bk repair snapshots' then marks the snapshots
whose data is gone as broken, so that 'bk forget' can remove them.

--restore-test runs restore drills instead of the repository check: SNAPSHOT,
or else the newest good snapshot of every source (host and name) made by the
postgres, mysql, sqlite or redis engine or of a folder, is loaded into a
throwaway target: a bk_drill_<random> database on the --scratch server of
its engine (postgres://USER@HOST[:PORT], mysql://USER@HOST[:PORT]; required
for those engines), a temporary SQLite file, a redis-server started on a
free local port in a temporary folder, or a temporary folder for a directory
snapshot. The target is always removed afterwards, even when the drill
fails. Every table is then counted exactly and compared with the snapshot's
manifest: the set of tables must match, and so must every exact count;
counts the manifest only estimated are reported next to the restored ones
without failing. Redis key counts per database must match the manifest's,
less keys that expired since; a folder must restore every entry, each file
verified against its hash. Whole-server dumps (postgres://host/*) are
skipped (not supported yet). One line per source gives pass or FAIL, the
restore time and the rows, keys or files checked; the exit status is 1 if any
drill failed.`,
		Example: `  bk check
  bk check --read-data
  bk check --read-data-subset 3/7                 # the third of seven slices
  bk check --read-data-subset "$(date +%u)/7"     # a slice per weekday: all in a week
  bk check --read-data-subset 5%
  bk check --snapshot latest --read-data
  bk check --json | jq '.problems[] | .what'
  bk check --restore-test --scratch postgres://postgres@127.0.0.1:5432 --scratch mysql://root@127.0.0.1:3306`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if restoreTest {
				if readData || opts.Subset != "" || opts.Snapshot != "" || opts.Seed != 0 {
					return usagef("--restore-test runs restore drills only; give the snapshot as an argument, and run the repository check separately")
				}
				return a.runRestoreTest(cmd, args, scratch, dbPasswordFile)
			}
			if len(args) > 0 {
				return usagef("a SNAPSHOT argument only applies to --restore-test; use --snapshot ID")
			}
			if len(scratch) > 0 || dbPasswordFile != "" {
				return usagef("--scratch and --db-password-file only apply to --restore-test")
			}
			if readData && opts.Subset != "" {
				return usagef("give --read-data or --read-data-subset, not both")
			}
			if err := repo.ValidSubset(opts.Subset); err != nil {
				return usagef("--read-data-subset: %v", err)
			}
			if opts.Seed != 0 && opts.Subset == "" {
				return usagef("--seed only applies to --read-data-subset P%%")
			}
			opts.ReadData = readData
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			start := time.Now()
			var rep *repo.CheckReport
			err = withLock(cmd.Context(), r, false, func() error {
				p := &repo.Progress{}
				opts.Progress = p
				pl := a.startProgress(p, "checked", false)
				defer pl.done()
				var err error
				rep, err = r.Check(cmd.Context(), opts)
				return err
			})
			if err != nil {
				return fmt.Errorf("check failed: %w", err)
			}
			if a.jsonOut {
				if err := a.printJSON(checkResult{rep, time.Since(start).Seconds()}); err != nil {
					return err
				}
			} else {
				a.printCheck(rep, opts, time.Since(start))
			}
			if !rep.OK() {
				return fmt.Errorf("check found %s", plural(len(rep.Problems), "error"))
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&readData, "read-data", false, "download every pack and verify every blob")
	f.StringVar(&opts.Subset, "read-data-subset", "", "read only a slice of the packs: N/M or P%")
	f.Uint64Var(&opts.Seed, "seed", 0, "seed of a P% subset, to repeat an earlier sample (default: from the clock)")
	f.StringVar(&opts.Snapshot, "snapshot", "", "check only what this snapshot needs (ID, prefix or \"latest\")")
	f.BoolVar(&restoreTest, "restore-test", false, "restore drills: load database snapshots into throwaway targets and compare row counts with their manifests")
	f.StringArrayVar(&scratch, "scratch", nil, "with --restore-test: server for drill databases, postgres://USER@HOST[:PORT] or mysql://USER@HOST[:PORT] (repeatable)")
	f.StringVar(&dbPasswordFile, "db-password-file", "", "with --restore-test: file (0600) with the scratch servers' password")
	return c
}

// runRestoreTest runs the restore drills of `bk check --restore-test`.
func (a *app) runRestoreTest(cmd *cobra.Command, args, scratchList []string, dbPasswordFile string) error {
	scratch, err := parseScratch(scratchList)
	if err != nil {
		return err
	}
	ref := ""
	if len(args) == 1 {
		ref = args[0]
	}
	r, err := a.open(cmd.Context())
	if err != nil {
		return err
	}
	defer r.Close()
	start := time.Now()
	var rep *drillReport
	err = withLock(cmd.Context(), r, false, func() error {
		var err error
		rep, err = runDrills(cmd.Context(), r, ref, scratch, dbPasswordFile)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore test failed: %w", err)
	}
	rep.Duration = time.Since(start).Seconds()
	if a.jsonOut {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		a.printDrills(rep)
	}
	return drillSummary(rep)
}

// printCheck prints one line per problem and warning, then a summary.
func (a *app) printCheck(rep *repo.CheckReport, opts repo.CheckOptions, d time.Duration) {
	for _, p := range rep.Problems {
		fmt.Fprintf(a.stdout, "error: %s\n", p)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(a.stdout, "warning: %s\n", w)
	}
	if rep.Seed != 0 {
		fmt.Fprintf(a.stdout, "read a random %s of the packs (repeat with --read-data-subset %s --seed %d)\n",
			opts.Subset, opts.Subset, rep.Seed)
	}
	read := "no data read"
	if opts.ReadData || opts.Subset != "" {
		read = fmt.Sprintf("%s and %s read (%s)", plural(int(rep.PacksRead), "pack"), plural(int(rep.BlobsChecked), "blob"),
			formatBytes(rep.BytesRead))
	}
	fmt.Fprintf(a.stdout, "checked %s, %s, %s; %s in %.1fs: %s, %s\n",
		plural(rep.Snapshots, "snapshot"), plural(rep.Indexes, "index file"), plural(rep.Packs, "pack"), read, d.Seconds(),
		plural(len(rep.Problems), "error"), plural(len(rep.Warnings), "warning"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
