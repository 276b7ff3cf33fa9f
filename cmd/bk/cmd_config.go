package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/bk-backup/bk/internal/config"
)

// configFile returns the configuration file to use: --config or BK_CONFIG,
// else /etc/bk/bk.toml, else ~/.config/bk/bk.toml.
func (a *app) configFile() (string, error) { return config.Find(a.configPath) }

// configCommand is `bk config`, which groups the commands about the
// configuration file.
func (a *app) configCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Work with the configuration file",
		Long: `The configuration file (TOML) names the repository and the jobs that
` + "`bk run`" + ` and the systemd timers carry out. It is --config FILE or BK_CONFIG,
else /etc/bk/bk.toml, else ~/.config/bk/bk.toml ($XDG_CONFIG_HOME).`,
		Example: `  bk config validate
  bk --config /etc/bk/bk.toml config validate --connect`,
	}
	c.AddCommand(a.configValidateCommand())
	return c
}

// configValidateJSON is the --json output of `bk config validate`.
type configValidateJSON struct {
	File     string              `json:"file"`
	Jobs     []configJobJSON     `json:"jobs"`
	Problems []configProblemJSON `json:"problems"`
}

// configJobJSON summarises one job.
type configJobJSON struct {
	Name          string   `json:"name"`
	Line          int      `json:"line"`
	Sources       []string `json:"sources"`
	Schedule      string   `json:"schedule,omitempty"`
	PruneSchedule string   `json:"prune_schedule,omitempty"`
	CheckSchedule string   `json:"check_schedule,omitempty"`
}

// configProblemJSON is one problem of the file.
type configProblemJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// configValidateCommand is `bk config validate [--connect]`.
func (a *app) configValidateCommand() *cobra.Command {
	var connect bool
	c := &cobra.Command{
		Use:   "validate [--connect]",
		Short: "Check the configuration file",
		Long: `Validate reads the configuration file and reports every problem, one per
line as FILE:LINE: message: TOML syntax, unknown keys (with the nearest
known one), wrong types, empty values, unknown source engines, passwords in
URLs, malformed schedules and retention rules. It also checks the password
files (they must exist and be readable by nobody but their owner) and, when
systemd-analyze is installed, every schedule.

--connect also checks that the repository exists and that every source
answers: a TCP connection to each PostgreSQL, MariaDB and Redis server,
the file of each SQLite source, the folder of each tree source.

Exit status 0 when the file is good, 2 when it has problems.`,
		Example: `  bk config validate
  bk --config /etc/bk/bk.toml config validate --connect
  BK_CONFIG=./bk.toml bk config validate --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := a.configFile()
			if err != nil {
				return usageError{err}
			}
			cfg, err := config.Load(file)
			var problems []config.Problem
			var perr *config.Errors
			switch {
			case errors.As(err, &perr):
				problems = perr.List
			case errors.Is(err, fs.ErrNotExist):
				return usagef("config file %s does not exist", file)
			case err != nil:
				return err
			default:
				problems = cfg.Validate(cmd.Context(), connect)
			}
			if a.jsonOut {
				out := configValidateJSON{File: file, Jobs: []configJobJSON{}, Problems: []configProblemJSON{}}
				if cfg != nil {
					for _, j := range cfg.Jobs {
						out.Jobs = append(out.Jobs, configJobJSON{Name: j.Name, Line: j.Line(), Sources: j.Sources,
							Schedule: j.Schedule, PruneSchedule: j.PruneSchedule, CheckSchedule: j.CheckSchedule})
					}
				}
				for _, p := range problems {
					out.Problems = append(out.Problems, configProblemJSON{File: p.File, Line: p.Line, Message: p.Msg})
				}
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(a.stderr, p)
				}
			}
			if n := len(problems); n > 0 {
				return usagef("config %s: %s", file, plural(n, "problem"))
			}
			if !a.jsonOut {
				fmt.Fprintf(a.stdout, "config %s: %s, OK\n", file, plural(len(cfg.Jobs), "job"))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&connect, "connect", false, "also check that the repository exists and every source answers")
	return c
}
