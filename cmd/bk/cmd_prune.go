package main

import (
	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/repo"
)

func (a *app) pruneCommand() *cobra.Command {
	var (
		keep   keepFlags
		pf     pruneFlags
		f      repo.Filter
		dryRun bool
	)
	c := &cobra.Command{
		Use:   "prune [--keep-* ...]",
		Short: "Reclaim the space of forgotten snapshots (after applying a retention policy)",
		Long: `Reclaim the space that no snapshot needs. With --keep-* rules, prune first
removes the snapshots the policy does not keep, exactly as 'bk forget' would,
then reclaims, all under one exclusive lock: a timer can run 'bk prune
--keep-daily 7 ...' alone. Without rules it only reclaims.

prune finds every blob the remaining snapshots need, the bases of delta
chains included, and then:
  - deletes the packs that hold no needed blob, and the packs no index lists
    (left by interrupted snapshots and prunes);
  - repacks a partly used pack when more than --max-unused of its blob bytes
    are unneeded: its needed blobs are copied, as stored, into new packs
    (up to --max-repack-size of packs per run, emptiest first);
  - writes the new index before it deletes any index file or pack.

It refuses, and changes nothing, when a blob a snapshot needs is missing from
the index or its pack is missing or damaged: run 'bk check'. An interrupted
prune leaves every snapshot restorable, and running it again finishes it.
--dry-run prints what would be removed and reclaimed and changes nothing.

` + policyHelp,
		Example: `  bk prune
  bk prune --dry-run
  bk prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12
  bk prune --keep-last 10 --name app --max-unused 10% --max-repack-size 4GiB
  bk prune --max-unused 0% --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := pf.options()
			if err != nil {
				return err
			}
			spec := forgetSpec{filter: f, prune: &o, dryRun: dryRun}
			if keep.given() {
				p, err := keep.policy()
				if err != nil {
					return err
				}
				spec.policy = &p
			} else if f.Name != "" || f.Host != "" || len(f.Tags) > 0 || cmd.Flags().Changed("group-by") {
				return usagef("--name, --host, --tag and --group-by apply to --keep-* rules; give some")
			}
			return a.forgetAndPrune(cmd.Context(), spec)
		},
	}
	keep.add(c)
	addFilterFlags(c, &f)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed and reclaimed, and change nothing")
	pf.add(c)
	return c
}
