package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/repo"
)

// lsEntry is one line of `bk ls --json`.
type lsEntry struct {
	Path  string    `json:"path"`
	Type  string    `json:"type"`
	Mode  string    `json:"mode"`
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	Link  string    `json:"link,omitempty"`
}

func (a *app) lsCommand() *cobra.Command {
	var (
		f        repo.Filter
		includes []string
	)
	c := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files of a directory snapshot",
		Long: `List the entries of a directory snapshot, or of the folder PATH inside it, with
type and mode, owner, size, modification time and path. --include GLOB selects
paths as restore --include does. A stream snapshot (a database dump) lists as
its single stream. No file content is read.`,
		Example: `  bk ls latest --name dir:/srv/www
  bk ls 3fa2c1d9 uploads/2026
  bk ls latest --name dir:/etc --include '*.conf' --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 2 {
				prefix = args[1]
			}
			want, err := includeFilter(prefix, includes)
			if err != nil {
				return err
			}
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			var list []lsEntry
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			err = withLock(cmd.Context(), r, false, func() error {
				snap, err := r.FindSnapshot(cmd.Context(), args[0], f)
				if err != nil {
					return err
				}
				if snap.Kind != repo.KindTree {
					e := lsEntry{Path: snap.Name, Type: "stream", Mode: "-r--------", Size: snap.Size, MTime: snap.Time}
					list = append(list, e)
					a.lsLine(tw, e)
					return nil
				}
				return r.RestoreTree(cmd.Context(), snap, want, false, func(n *repo.Node, _ io.Reader) error {
					e := lsEntry{Path: n.Path, Type: n.Type, Mode: modeString(n), UID: n.UID, GID: n.GID,
						Size: n.Size, MTime: time.Unix(0, n.MTime).UTC(), Link: n.Link}
					if a.jsonOut {
						list = append(list, e)
					} else {
						a.lsLine(tw, e)
					}
					return nil
				}, nil)
			})
			if err != nil {
				return fmt.Errorf("ls failed: %w", err)
			}
			if a.jsonOut {
				if list == nil {
					list = []lsEntry{}
				}
				return a.printJSON(list)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringArrayVar(&includes, "include", nil, "list only paths matching this glob (repeatable)")
	addFilterFlags(c, &f)
	return c
}

func (a *app) lsLine(tw io.Writer, e lsEntry) {
	if a.jsonOut {
		return
	}
	name := e.Path
	if e.Link != "" {
		name += " -> " + e.Link
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t %s\n", e.Mode, e.UID, e.GID, formatBytes(e.Size),
		e.MTime.Local().Format("2006-01-02 15:04"), name)
}

// modeString renders a node's type and mode like ls -l: "-rwsr-x---".
func modeString(n *repo.Node) string {
	types := map[string]byte{repo.NodeDir: 'd', repo.NodeSymlink: 'l', repo.NodeFIFO: 'p',
		repo.NodeDevice: 'b', repo.NodeCharDevice: 'c', repo.NodeSocket: 's'}
	b := []byte("----------")
	if c, ok := types[n.Type]; ok {
		b[0] = c
	}
	for i, c := range "rwxrwxrwx" {
		if n.Mode&(1<<(8-i)) != 0 {
			b[1+i] = byte(c)
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if n.Mode&bit != 0 {
			if b[pos] == 'x' {
				b[pos] = set
			} else {
				b[pos] = unset
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}
