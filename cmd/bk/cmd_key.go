package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
)

func (a *app) keyCommand() *cobra.Command {
	var newPassFile string
	c := &cobra.Command{
		Use:   "key",
		Short: "Manage the passwords (keys) that open the repository",
		Long: `Several passwords can open the same repository; each has a key file that
wraps the repository's master key. The new password for add and passwd comes
from --new-password-file, BK_NEW_PASSWORD, or a prompt asked twice.`,
		Example: `  bk key list
  BK_NEW_PASSWORD_FILE=/etc/bk/ops.pass bk key add --new-password-file /etc/bk/ops.pass
  bk key remove 1a2b3c4d
  bk key passwd --new-password-file /etc/bk/new.pass`,
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List keys",
		Example: `  bk key list --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer r.Close()
			keys, err := r.Keys(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(keys)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, " \tID\tCreated\tHost\tUser")
			for _, k := range keys {
				cur := " "
				if k.Current {
					cur = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, k.Name[:8], k.Created.Local().Format(time.DateTime), k.Host, k.Username)
			}
			return tw.Flush()
		},
	}
	add := &cobra.Command{
		Use:     "add",
		Short:   "Add a password",
		Example: `  BK_NEW_PASSWORD=... bk key add`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withNewKey(cmd, newPassFile, (*repo.Repository).AddKey, "added", "added key %s\n")
		},
	}
	remove := &cobra.Command{
		Use:     "remove ID",
		Short:   "Remove a password (not the one in use, nor the last)",
		Example: `  bk key remove 1a2b3c4d`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withRepoLocked(cmd, func(r *repo.Repository) error {
				name, err := r.FindKey(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if err := r.RemoveKey(cmd.Context(), name); err != nil {
					return err
				}
				return a.report(map[string]string{"removed": name}, "removed key %s\n", name[:8])
			})
		},
	}
	passwd := &cobra.Command{
		Use:     "passwd",
		Short:   "Change the password in use",
		Example: `  bk key passwd --new-password-file /etc/bk/new.pass`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withNewKey(cmd, newPassFile, (*repo.Repository).ChangePassword, "key", "password changed; new key %s\n")
		},
	}
	for _, sub := range []*cobra.Command{add, passwd} {
		sub.Flags().StringVar(&newPassFile, "new-password-file", "", "read the new password from this file")
	}
	c.AddCommand(list, add, remove, passwd)
	return c
}

// withNewKey reads a new password and stores a key for it with op, under
// an exclusive lock, then reports the new key's name as jsonKey or format.
func (a *app) withNewKey(cmd *cobra.Command, passFile string,
	op func(*repo.Repository, context.Context, []byte, crypt.KDFParams) (string, error), jsonKey, format string) error {
	return a.withRepoLocked(cmd, func(r *repo.Repository) error {
		pw, err := newPassword(passFile)
		if err != nil {
			return err
		}
		name, err := op(r, cmd.Context(), pw, a.kdf)
		clear(pw)
		if err != nil {
			return err
		}
		return a.report(map[string]string{jsonKey: name}, format, name[:8])
	})
}

// withRepoLocked opens the repository and runs fn under an exclusive lock.
func (a *app) withRepoLocked(cmd *cobra.Command, fn func(*repo.Repository) error) error {
	r, err := a.open(cmd.Context())
	if err != nil {
		return err
	}
	defer r.Close()
	return withLock(cmd.Context(), r, true, func() error { return fn(r) })
}

// report prints v as JSON or the formatted text.
func (a *app) report(v any, format string, args ...any) error {
	if a.jsonOut {
		return a.printJSON(v)
	}
	_, err := fmt.Fprintf(a.stdout, format, args...)
	return err
}
