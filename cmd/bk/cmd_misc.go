package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
)

func (a *app) unlockCommand() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks",
		Long: `Remove locks left by processes that died: locks older than 30 minutes, locks
of exited processes on this host, and unreadable lock files. --remove-all also
removes live locks; use it only when you know no bk process is running.`,
		Example: `  bk unlock
  bk unlock --remove-all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			n, err := r.RemoveLocks(cmd.Context(), all)
			if err != nil {
				return err
			}
			return a.report(map[string]int{"removed": n}, "removed %d locks\n", n)
		},
	}
	c.Flags().BoolVar(&all, "remove-all", false, "remove every lock, including live ones")
	return c
}

func (a *app) catCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cat (config | snapshot ID | index ID)",
		Short: "Print decrypted repository metadata as JSON, for debugging",
		Example: `  bk cat config
  bk cat snapshot latest
  bk cat index 5c1e`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			ctx := cmd.Context()
			switch {
			case args[0] == "config" && len(args) == 1:
				return a.printJSON(r.Config())
			case args[0] == "snapshot" && len(args) == 2:
				s, err := r.FindSnapshot(ctx, args[1], repo.Filter{})
				if err != nil {
					return err
				}
				return a.printJSON(snapshotJSON{ID: s.ID.String(), Snapshot: s})
			case args[0] == "index" && len(args) == 2:
				name, err := r.FindFile(ctx, store.IndexFile, args[1])
				if err != nil {
					return err
				}
				f, err := r.LoadIndexFile(ctx, name)
				if err != nil {
					return err
				}
				return a.printJSON(indexView(name, f))
			}
			return usagef("cat needs `config`, `snapshot ID` or `index ID`")
		},
	}
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: `  bk version --json`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := map[string]any{"version": version, "format": repo.FormatVersion, "go": runtime.Version(),
				"platform": runtime.GOOS + "/" + runtime.GOARCH}
			if a.jsonOut {
				return a.printJSON(v)
			}
			_, err := fmt.Fprintf(a.stdout, "bk %s (repository format %d, %s, %s/%s)\n",
				version, repo.FormatVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// blobView is one blob in `bk cat index` output.
type blobView struct {
	Type      string    `json:"type"`
	Encoding  string    `json:"encoding"`
	ID        crypt.ID  `json:"id"`
	Base      *crypt.ID `json:"base,omitempty"`
	Offset    int64     `json:"offset"`
	Length    int64     `json:"length"`
	RawLength int64     `json:"raw_length"`
}

// packView is one pack in `bk cat index` output.
type packView struct {
	ID    crypt.ID   `json:"id"`
	Size  int64      `json:"size"`
	Blobs []blobView `json:"blobs"`
}

// indexView renders an index file for `bk cat index`.
func indexView(name string, f *index.File) any {
	packs := make([]packView, 0, len(f.Packs))
	for _, p := range f.Packs {
		pv := packView{ID: p.ID, Size: p.Size, Blobs: make([]blobView, 0, len(p.Blobs))}
		for _, e := range p.Blobs {
			bv := blobView{Type: e.Type.String(), Encoding: e.Enc.String(), ID: e.ID,
				Offset: e.Offset, Length: e.Length, RawLength: e.RawLength}
			if e.Enc == pack.DeltaZstd {
				base := e.Base
				bv.Base = &base
			}
			pv.Blobs = append(pv.Blobs, bv)
		}
		packs = append(packs, pv)
	}
	sup := f.Supersedes
	if sup == nil {
		sup = []crypt.ID{}
	}
	return map[string]any{"id": name, "supersedes": sup, "packs": packs}
}
