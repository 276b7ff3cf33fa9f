package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/repo"
)

// snapshotJSON is one snapshot in --json output.
type snapshotJSON struct {
	ID string `json:"id"`
	*repo.Snapshot
}

func (a *app) snapshotsCommand() *cobra.Command {
	var f repo.Filter
	c := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Long:  `List snapshots, oldest first, optionally filtered by name, host and tags.`,
		Example: `  bk snapshots
  bk snapshots --name app --tag nightly
  bk snapshots --json | jq '.[-1].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			list, err := r.Snapshots(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]snapshotJSON, len(list))
				for i, s := range list {
					if s.Tags == nil {
						s.Tags = []string{}
					}
					out[i] = snapshotJSON{ID: s.ID.String(), Snapshot: s}
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTime\tHost\tName\tTags\tSize\tAdded\tStatus")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format(time.DateTime),
					s.Host, s.Name, strings.Join(s.Tags, ","), formatBytes(s.Size), formatBytes(s.AddedBytes), s.Status)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d snapshots\n", len(list))
			return nil
		},
	}
	addFilterFlags(c, &f)
	return c
}

func addFilterFlags(c *cobra.Command, f *repo.Filter) {
	c.Flags().StringVar(&f.Name, "name", "", "only snapshots of this source name")
	c.Flags().StringVar(&f.Host, "host", "", "only snapshots from this host")
	c.Flags().StringArrayVar(&f.Tags, "tag", nil, "only snapshots with this tag (repeatable; all must match)")
}
