package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// DefaultHookTimeout bounds each before, after and on_error command unless
// a job sets hook_timeout.
const DefaultHookTimeout = 5 * time.Minute

// Config is a loaded and checked configuration file.
type Config struct {
	Path       string // the file it was loaded from
	Repository Repository
	Jobs       []*Job // in file order

	lines lineMap // key path → line, for the problems Validate reports
}

// Repository is the [repository] table: where the repository is and how it
// is opened.
type Repository struct {
	// Path is an absolute folder ("local:" prefix allowed) or
	// "s3:https://host/bucket/prefix" (path).
	Path string
	// PasswordFile (password_file) and PasswordCommand (password_command,
	// run with /bin/sh -c) give the repository password; at most one is set.
	// With neither, the environment (BK_PASSWORD, ...) or a prompt does.
	PasswordFile, PasswordCommand string
	// CacheDir (cache_dir) is the local cache folder; "" for the default.
	CacheDir string
	// S3 holds the options of an S3 repository ([repository.s3]).
	S3 S3
}

// S3 is the [repository.s3] table: region, lookup ("auto", "dns" or
// "path"), ca_file, storage_class and timeout (a Go duration such as "10m";
// 0 when unset, meaning bk's default).
type S3 struct {
	Region, Lookup, CAFile, StorageClass string
	Timeout                              time.Duration
}

// Job is one [jobs.NAME] table: sources snapshotted together, on a schedule,
// with a retention policy, checks, hooks and notifications.
type Job struct {
	// Name is the table's name: letters, digits, '_' and '-', so that it can
	// name systemd units (bk-NAME.timer).
	Name string
	// Sources are source URLs (postgres://, mysql://, sqlite:///, redis://,
	// file:///, or an absolute folder), each snapshotted under its own name.
	Sources []string
	// Tags (tags) are added to every snapshot of the job.
	Tags []string
	// DBPasswordFile (db_password_file) holds the database password for the
	// job's sources.
	DBPasswordFile string
	// Schedule (schedule) is a systemd OnCalendar expression for snapshots;
	// "" means not scheduled.
	Schedule string
	// PruneSchedule (prune_schedule) is when forget and prune run; "" means
	// they run in `bk run` right after the snapshots, when a keep_* is set.
	PruneSchedule string
	// CheckSchedule (check_schedule) is when `bk check` runs with Check's
	// options; "" means never on its own.
	CheckSchedule string
	// Keep is the retention policy (keep_* keys).
	Keep Keep
	// Check holds the options of scheduled checks ([jobs.NAME.check]).
	Check Check
	// Before, After and OnError (before, after, on_error) are shell
	// commands run with /bin/sh -c: before the snapshots (a failure aborts
	// the run), after them (always, like a finally) and when the run failed.
	Before, After, OnError []string
	// HookTimeout (hook_timeout, a Go duration) bounds each hook command;
	// DefaultHookTimeout when unset.
	HookTimeout time.Duration
	// Notify says whom to tell about runs ([jobs.NAME.notify]).
	Notify Notify

	line int // of the job's first key or table
}

// Keep is a retention policy: keep_last, keep_hourly, keep_daily,
// keep_weekly, keep_monthly, keep_yearly (0 = unset), keep_within (a
// duration like "30d", "2w" or "1y6m": numbers with units y, m (months), w,
// d, h, as for `bk forget --keep-within`) and keep_tags.
type Keep struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       string
	Tags                                         []string
}

// Any reports whether the policy keeps anything, that is whether forget may
// run with it. An empty policy must never reach forget.
func (k Keep) Any() bool {
	return k.Last > 0 || k.Hourly > 0 || k.Daily > 0 || k.Weekly > 0 || k.Monthly > 0 ||
		k.Yearly > 0 || k.Within != "" || len(k.Tags) > 0
}

// Check is the [jobs.NAME.check] table: read_data_subset ("N/M" or "P%",
// as for `bk check --read-data-subset`), restore_test and the scratch
// servers (PostgreSQL or MariaDB URLs) a restore test loads into.
type Check struct {
	ReadDataSubset string
	RestoreTest    bool
	Scratch        []string
}

// Notify is the [jobs.NAME.notify] table.
type Notify struct {
	Webhook      string   // URL that gets a JSON POST per run
	Healthchecks string   // healthchecks.io style ping URL: /start, success, /fail
	Ntfy         string   // full topic URL, e.g. https://ntfy.sh/mytopic
	Email        *Email   // [jobs.NAME.notify.email]; nil when unset
	On           []string // when to notify: "success", "failure", "suspicious"; default failure and suspicious (healthchecks always gets start/success/fail pings)
}

// Notification events of Notify.On.
const (
	OnSuccess    = "success"
	OnFailure    = "failure"
	OnSuspicious = "suspicious"
)

// Wants reports whether Notify.On asks for event.
func (n Notify) Wants(event string) bool { return slices.Contains(n.On, event) }

// Email is the [jobs.NAME.notify.email] table.
type Email struct {
	SMTP                   string // host:port
	From                   string
	To                     []string
	Username, PasswordFile string // SMTP login; both or neither
	StartTLS               bool   // starttls; default true
}

// Job returns the job called name.
func (c *Config) Job(name string) (*Job, bool) {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return nil, false
}

// JobNames returns the names of the jobs in file order.
func (c *Config) JobNames() []string {
	names := make([]string, len(c.Jobs))
	for i, j := range c.Jobs {
		names[i] = j.Name
	}
	return names
}

// Line returns the line of the key at path (for example "jobs", "app",
// "sources"; array elements as "#0", "#1"), or of the nearest enclosing key
// or table that has one; 0 when none does.
func (c *Config) Line(path ...string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := c.lines[pathKey(path[:n])]; ok {
			return l
		}
	}
	return 0
}

// Line returns the line where the job's table or first key appears.
func (j *Job) Line() int { return j.line }

// Problem is one thing wrong in a configuration file.
type Problem struct {
	File string
	Line int // 1-based; 0 when the problem concerns the whole file
	Msg  string
}

// String renders the problem as FILE:LINE: message (FILE: message without
// a line).
func (p Problem) String() string {
	if p.Line <= 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Errors is every problem Load found in a file, in line order.
type Errors struct{ List []Problem }

// Error renders one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, p := range e.List {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by file and line, keeping the order of
// problems on one line.
func sortProblems(list []Problem) {
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// Load reads and checks the configuration file at path. Problems with its
// content (syntax, unknown keys, wrong types, empty or malformed values) are
// all reported, each with its line, in one *Errors. Failing to read the file
// is an ordinary error (matching fs.ErrNotExist when it is missing). Load
// reads nothing but the file; Validate checks the machine.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

// parse decodes and checks data, read from file.
func parse(file string, data []byte) (*Config, error) {
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		line := 0
		msg := err.Error()
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ = de.Position()
		}
		msg = strings.TrimPrefix(msg, "toml: ")
		return nil, &Errors{List: []Problem{{File: file, Line: line, Msg: "TOML syntax: " + msg}}}
	}
	l := &loader{file: file, lines: positions(data)}
	c := l.config(raw)
	if len(l.problems) > 0 {
		sortProblems(l.problems)
		return nil, &Errors{List: l.problems}
	}
	c.Path = file
	c.lines = l.lines
	return c, nil
}

// ErrNoConfig means no configuration file was given and none exists at the
// default places.
var ErrNoConfig = errors.New("no config file")

// systemPath is the system-wide configuration file.
var systemPath = "/etc/bk/bk.toml"

// Find returns the configuration file to use: flag (the --config option or
// BK_CONFIG) when set, else /etc/bk/bk.toml, else bk/bk.toml in
// $XDG_CONFIG_HOME (~/.config) when it exists. Without any, the error
// matches ErrNoConfig and names the places looked at.
func Find(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	candidates := []string{systemPath}
	if d, err := os.UserConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(d, "bk", "bk.toml"))
	}
	for _, p := range candidates {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("config: %w", err)
		}
	}
	return "", fmt.Errorf("%w: pass --config FILE, set BK_CONFIG, or create %s", ErrNoConfig, strings.Join(candidates, " or "))
}
