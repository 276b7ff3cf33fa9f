package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/local"
)

// app holds the global options and the process's streams.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	repoPath     string
	passwordFile string
	passwordCmd  string
	jsonOut      bool
	quiet        bool
	cacheDir     string
	noCache      bool
	s3           s3Flags
	configPath   string // --config, BK_CONFIG
	logJSON      bool
	logLevel     string
	log          *slog.Logger
	kdf          crypt.KDFParams // for tests: BK_TEST_KDF=cheap
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, kdf: crypt.DefaultKDF}
	if os.Getenv("BK_TEST_KDF") == "cheap" {
		a.kdf = crypt.TestKDF
	}
	return a
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "bk",
		Short: "Back up databases into an encrypted, deduplicating repository",
		Long: `bk stores database dumps and other streams in an encrypted, deduplicating
repository and restores them byte for byte.

The repository is given by --repo or BK_REPO. The password comes from
BK_PASSWORD, --password-file/BK_PASSWORD_FILE, --password-command/
BK_PASSWORD_COMMAND, or a prompt on a terminal. It is never read from argv.`,
		Example: `  export BK_REPO=/var/backups/bk BK_PASSWORD_FILE=/etc/bk/repo.pass
  bk init
  pg_dump app | bk snapshot --stdin --name app
  bk snapshot --name app --tag nightly -- pg_dump -h 127.0.0.1 app
  bk snapshots
  bk restore latest --name app --stdout | psql app_restored`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&a.repoPath, "repo", "r", os.Getenv("BK_REPO"), "repository location (env BK_REPO)")
	pf.StringVar(&a.passwordFile, "password-file", "", "read the repository password from this file (env BK_PASSWORD_FILE)")
	pf.StringVar(&a.passwordCmd, "password-command", "", "run this shell command and use its output as the password (env BK_PASSWORD_COMMAND)")
	pf.BoolVar(&a.jsonOut, "json", false, "print one JSON document for machines")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print no progress")
	pf.StringVar(&a.cacheDir, "cache-dir", os.Getenv("BK_CACHE_DIR"), "local cache folder (env BK_CACHE_DIR; default $XDG_CACHE_HOME/bk)")
	pf.BoolVar(&a.noCache, "no-cache", false, "use no local cache")
	a.s3.register(pf)
	pf.StringVar(&a.configPath, "config", os.Getenv("BK_CONFIG"), "config file (env BK_CONFIG; default /etc/bk/bk.toml, then ~/.config/bk/bk.toml)")
	pf.BoolVar(&a.logJSON, "log-json", false, "write logs as JSON lines on stderr")
	pf.StringVar(&a.logLevel, "log-level", os.Getenv("BK_LOG_LEVEL"), "log level: debug, info, warn or error (env BK_LOG_LEVEL; default warn)")

	root.AddCommand(a.initCommand(), a.snapshotCommand(), a.snapshotsCommand(), a.restoreCommand(),
		a.keyCommand(), a.unlockCommand(), a.catCommand(), a.versionCommand(),
		a.checkCommand(), a.repairCommand(), a.forgetCommand(), a.pruneCommand(), a.lsCommand(), a.runCommand(), a.scheduleCommand(),
		a.configCommand(), a.serveCommand())
	usageArgs(root)
	return root
}

// usageArgs makes wrong positional arguments a usage error (exit 2) in c and
// its subcommands. A command that only groups subcommands (bk, bk key)
// rejects an unknown subcommand instead of printing its help and exiting 0.
func usageArgs(c *cobra.Command) {
	if !c.Runnable() && c.HasSubCommands() {
		c.Args = cobra.NoArgs
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// backend opens the storage named by --repo; create makes a new one.
func (a *app) backend(ctx context.Context, create bool) (store.Backend, error) {
	loc := a.repoPath
	if loc == "" {
		return nil, usagef("no repository given: pass --repo PATH or set BK_REPO")
	}
	if strings.HasPrefix(loc, "s3:") {
		return a.s3Backend(ctx, loc, create)
	}
	loc = strings.TrimPrefix(loc, "local:")
	if create {
		be, err := local.Create(loc)
		if errors.Is(err, store.ErrExists) {
			if _, serr := os.Stat(filepath.Join(loc, "config")); serr == nil {
				return nil, fmt.Errorf("refusing to initialise %s: %w", loc, repo.ErrExists)
			}
			return nil, fmt.Errorf("%s is not an empty folder: refusing to initialise a repository over existing files", loc)
		}
		return be, err
	}
	be, err := local.Open(loc)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noRepo(err)
	}
	return be, err
}

// noRepo marks err (which matches store.ErrNotFound) as "no repository".
func noRepo(err error) error {
	return &noRepoError{err}
}

type noRepoError struct{ err error }

func (e *noRepoError) Error() string   { return e.err.Error() + " (create one with `bk init`)" }
func (e *noRepoError) Unwrap() []error { return []error{e.err, errNoRepo} }

// open opens the repository with the configured password.
func (a *app) open(ctx context.Context) (*repo.Repository, error) {
	be, err := a.backend(ctx, false)
	if err != nil {
		return nil, err
	}
	pw, err := a.password(false)
	if err != nil {
		return nil, err
	}
	opts := a.openOptions()
	if _, isLocal := be.(*local.Backend); !isLocal {
		// A remote repository keeps each source's latest chunks cached
		// locally, so tomorrow's delta bases are not fetched again. A local
		// repository is read as fast as a cache would be.
		if !a.noCache {
			opts.CacheDir = a.cacheRoot()
		}
		// Restores keep several ranged reads in flight to hide the round
		// trips.
		opts.ReadAhead = 48 << 20
	}
	r, err := repo.Open(ctx, be, pw, opts)
	clear(pw)
	// The key derivation's 64 MiB are garbage now; hand them back to the
	// OS so they do not add to the peak memory of the work that follows.
	debug.FreeOSMemory()
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, noRepo(err)
		}
		if errors.Is(err, crypt.ErrWrongPassword) {
			err = fmt.Errorf("wrong password for %s: %w", be.Location(), crypt.ErrWrongPassword)
		}
		return nil, err
	}
	return r, nil
}

func (a *app) openOptions() repo.OpenOptions {
	host, _ := os.Hostname()
	o := repo.OpenOptions{Host: host}
	if u, err := user.Current(); err == nil {
		o.Username = u.Username
	}
	return o
}

// cacheRoot is the local cache folder: --cache-dir, BK_CACHE_DIR,
// $XDG_CACHE_HOME/bk or ~/.cache/bk.
func (a *app) cacheRoot() string {
	if a.cacheDir != "" {
		return a.cacheDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "bk")
	}
	return ""
}

// withLock runs fn holding a repository lock.
func withLock(ctx context.Context, r *repo.Repository, exclusive bool, fn func() error) error {
	l, err := r.Lock(ctx, exclusive)
	if err != nil {
		return err
	}
	err = fn()
	if uerr := l.Unlock(context.WithoutCancel(ctx)); err == nil {
		err = uerr
	}
	return err
}

// printJSON writes v to stdout as one indented JSON document.
func (a *app) printJSON(v any) error { return a.printJSONTo(a.stdout, v) }

// printJSONTo writes v to w as one indented JSON document.
func (a *app) printJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatBytes renders n in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
