package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/repo"
)

func (a *app) repairCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "repair",
		Short: "Repair a damaged repository: rebuild the index, mark lost snapshots broken",
		Long: `Repair what 'bk check' reports. Both subcommands take an exclusive lock.

After index files were lost or damaged, run 'bk repair index'. After packs
were lost or damaged, run 'bk repair index' (so that the index no longer
lists what is gone), then 'bk repair snapshots' (so that the snapshots that
needed it are marked broken), then 'bk forget' on the broken snapshots.`,
		Example: `  bk check
  bk repair index
  bk repair snapshots --dry-run
  bk repair snapshots
  bk check --read-data`,
	}
	c.AddCommand(a.repairIndexCommand(), a.repairSnapshotsCommand())
	return c
}

func (a *app) repairIndexCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the pack headers",
		Long: `Rebuild the index from the headers of the packs, for when index files are lost
or damaged. Every pack header is read (not the data); new index files that
cover every readable pack are written, and only then are the old index files
deleted, so an interruption leaves a usable index. A pack whose header is
unreadable keeps what an old index file says of it. Packs the old index
listed that no longer exist are dropped from the index.`,
		Example: `  bk repair index
  bk repair index --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *repo.RepairReport
			err := a.withRepoLocked(cmd, func(r *repo.Repository) (err error) {
				rep, err = r.RepairIndex(cmd.Context())
				return err
			})
			if err != nil {
				return fmt.Errorf("repair index failed: %w", err)
			}
			if a.jsonOut {
				return a.printJSON(rep)
			}
			for _, w := range rep.Warnings {
				fmt.Fprintf(a.stdout, "warning: %s\n", w)
			}
			for _, id := range rep.Added {
				fmt.Fprintf(a.stdout, "indexed pack %s (no index listed it)\n", id.Short())
			}
			for _, id := range rep.Dropped {
				fmt.Fprintf(a.stdout, "dropped pack %s (it no longer exists)\n", id.Short())
			}
			fmt.Fprintf(a.stdout, "indexed %d packs (%d blobs) in %d new index files; removed %d old index files\n",
				rep.Packs, rep.Blobs, len(rep.Written), len(rep.Removed))
			return nil
		},
	}
}

func (a *app) repairSnapshotsCommand() *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:   "snapshots [--dry-run]",
		Short: "Mark the snapshots whose data is gone as broken",
		Long: `Mark every snapshot whose data is gone as broken: a blob it needs is not in
the index, its pack is missing or truncated, or a tree does not load (what
the structural 'bk check' finds). Each is rewritten with the status "broken"
and otherwise unchanged. Broken snapshots are never used as delta bases,
'bk forget' removes them, and 'bk check' then reports them as warnings only.

It refuses while index files are damaged or packs are not indexed, since the
missing blobs may be in them: run 'bk repair index' first.`,
		Example: `  bk repair snapshots --dry-run
  bk repair snapshots`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *repo.RepairSnapshotsReport
			err := a.withRepoLocked(cmd, func(r *repo.Repository) (err error) {
				rep, err = r.RepairSnapshots(cmd.Context(), dryRun)
				return err
			})
			if err != nil {
				return fmt.Errorf("repair snapshots failed: %w", err)
			}
			if a.jsonOut {
				return a.printJSON(rep)
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(a.stdout, "lost: %s\n", p)
			}
			verb := "marked"
			if dryRun {
				verb = "would mark"
			}
			for _, m := range rep.Marked {
				line := fmt.Sprintf("%s snapshot %s broken (%s, %s, %s)", verb, m.ID.Short(), m.Name, m.Host,
					m.Time.Local().Format(time.DateTime))
				if !m.NewID.IsNull() {
					line += "; it is now " + m.NewID.Short()
				}
				fmt.Fprintln(a.stdout, line)
			}
			fmt.Fprintf(a.stdout, "%s %d snapshots broken\n", verb, len(rep.Marked))
			return nil
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "only print which snapshots would be marked")
	return c
}
