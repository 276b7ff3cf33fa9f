package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/repo"
)

func (a *app) initCommand() *cobra.Command {
	var (
		packSize  int64
		chunkSize string
		noDelta   bool
	)
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new, empty repository at --repo. bk refuses to initialise over an
existing repository or a folder that is not empty. On a terminal the password
is asked twice; otherwise it comes from BK_PASSWORD, BK_PASSWORD_FILE or
BK_PASSWORD_COMMAND.`,
		Example: `  BK_PASSWORD_FILE=/etc/bk/repo.pass bk init --repo /var/backups/bk
  bk init --repo /srv/bk --chunk-size 1MiB
  bk init --repo /srv/bk-files --no-delta`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := a.password(true)
			if err != nil {
				return err
			}
			be, err := a.backend(cmd.Context(), true)
			if err != nil {
				return err
			}
			cs, err := parseSize(chunkSize)
			if err != nil {
				return usagef("--chunk-size: %v", err)
			}
			if cs != 0 && (cs&(cs-1) != 0 || cs < 64<<10 || cs > 8<<20) {
				return usagef("--chunk-size %s: must be a power of two from 64KiB to 8MiB", chunkSize)
			}
			host, _ := os.Hostname()
			opts := repo.InitOptions{KDF: a.kdf, PackSize: packSize, ChunkSize: int(cs), NoDelta: noDelta, Host: host}
			if u, err := user.Current(); err == nil {
				opts.Username = u.Username
			}
			r, err := repo.Init(cmd.Context(), be, pw, opts)
			clear(pw)
			if err != nil {
				return err
			}
			defer r.Close()
			cfg := r.Config()
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": cfg.ID, "location": be.Location(), "config": cfg})
			}
			fmt.Fprintf(a.stdout, "created repository %s at %s\n", cfg.ID.Short(), be.Location())
			fmt.Fprintln(a.stdout, "Keep the password safe: without it the data cannot be read.")
			return nil
		},
	}
	c.Flags().Int64Var(&packSize, "pack-size", 0, "target pack size in bytes (default 16 MiB)")
	c.Flags().StringVar(&chunkSize, "chunk-size", "", "average chunk size, a power of two from 64KiB to 8MiB (default 512KiB)")
	c.Flags().BoolVar(&noDelta, "no-delta", false, "never store chunks as deltas in this repository")
	return c
}

// parseSize parses "512KiB", "1MiB", "65536" and the like; empty is 0.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size like 512KiB", s)
	}
	return n * mult, nil
}
