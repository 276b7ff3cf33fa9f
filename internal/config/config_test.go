package config

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/testenv"
)

// example is the configuration of the issue, with PASSFILE standing for the
// password file's path.
const example = `[repository]
path = "/var/backups/bk"                 # or "s3:https://host/bucket/prefix"
password_file = "PASSFILE"

[jobs.app]
sources = ["sqlite:///var/lib/app/app.db", "postgres://backup@127.0.0.1/app"]
schedule = "daily"                       # a systemd OnCalendar expression
keep_daily = 7
keep_weekly = 4
before = ["systemctl stop app"]
after = ["systemctl start app"]

[jobs.app.notify]
webhook = "https://hooks.example.com/bk"
healthchecks = "https://hc.example.com/ping/UUID"
`

// writeFile writes content to name in dir with mode and returns its path.
func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// exampleFile writes the example with a password file of the given mode
// (none when mode is 0) and returns the config's path and the password
// file's.
func exampleFile(t testing.TB, mode os.FileMode, extra string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	pass := filepath.Join(dir, "repo.pass")
	if mode != 0 {
		writeFile(t, dir, "repo.pass", "s3cret\n", mode)
	}
	return writeFile(t, dir, "bk.toml", strings.ReplaceAll(example, "PASSFILE", pass)+extra, 0o644), pass
}

func TestConfigExampleLoads(t *testing.T) {
	path, pass := exampleFile(t, 0o600, "")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.Repository.Path != "/var/backups/bk" || c.Repository.PasswordFile != pass {
		t.Errorf("repository: %+v", c.Repository)
	}
	if len(c.Jobs) != 1 {
		t.Fatalf("jobs: %d", len(c.Jobs))
	}
	j := c.Jobs[0]
	want := Job{
		Name:        "app",
		Sources:     []string{"sqlite:///var/lib/app/app.db", "postgres://backup@127.0.0.1/app"},
		Schedule:    "daily",
		Keep:        Keep{Daily: 7, Weekly: 4},
		Before:      []string{"systemctl stop app"},
		After:       []string{"systemctl start app"},
		HookTimeout: DefaultHookTimeout,
		Notify: Notify{Webhook: "https://hooks.example.com/bk", Healthchecks: "https://hc.example.com/ping/UUID",
			On: []string{OnFailure, OnSuspicious}},
	}
	if j.Name != want.Name || !slices.Equal(j.Sources, want.Sources) || j.Schedule != want.Schedule ||
		j.Keep.Daily != 7 || j.Keep.Weekly != 4 || !j.Keep.Any() || !slices.Equal(j.Before, want.Before) ||
		!slices.Equal(j.After, want.After) || j.HookTimeout != want.HookTimeout ||
		j.Notify.Webhook != want.Notify.Webhook || j.Notify.Healthchecks != want.Notify.Healthchecks ||
		!slices.Equal(j.Notify.On, want.Notify.On) || j.Notify.Email != nil {
		t.Errorf("job:\n got %+v\nwant %+v", *j, want)
	}
	if j.Line() != 5 || c.Line("jobs", "app", "sources", "#1") != 6 || c.Line("jobs", "app", "notify", "webhook") != 14 {
		t.Errorf("lines: job %d, sources[1] %d, webhook %d", j.Line(), c.Line("jobs", "app", "sources", "#1"), c.Line("jobs", "app", "notify", "webhook"))
	}
	if got, ok := c.Job("app"); !ok || got != j {
		t.Error("Job(app) not found")
	}
	if probs := c.Validate(t.Context(), false); len(probs) > 0 {
		t.Errorf("Validate: %v", probs)
	}
}

func TestConfigFull(t *testing.T) {
	dir := t.TempDir()
	cfg := `[repository]
path = "s3:https://s3.example.com/bucket/prefix"
password_command = "pass show bk"
cache_dir = "/var/cache/bk"

[repository.s3]
region = "eu-central-1"
lookup = "path"
ca_file = "/etc/ssl/ca.pem"
storage_class = "STANDARD_IA"
timeout = "10m"

[jobs.zeta]
sources = ["/srv/www", "file:///var/lib/app", "redis://127.0.0.1:6380", "mysql://root@db/*", "postgresql://db:5433/x"]
tags = ["nightly"]
db_password_file = "/etc/bk/db.pass"
schedule = "Mon..Fri *-*-* 02:30:00 Europe/Berlin"
prune_schedule = "Sun 04:00"
check_schedule = "*-*-01 05:00"
keep_last = 3
keep_within = "1y6m"
keep_tags = ["keep"]
on_error = ["logger bk failed"]
hook_timeout = "90s"

[jobs.zeta.check]
read_data_subset = "10%"
restore_test = true
scratch = ["postgres://postgres@db2", "mysql://root@db2"]

[jobs.zeta.notify]
ntfy = "https://ntfy.sh/topic"
on = ["success", "failure"]

[jobs.zeta.notify.email]
smtp = "mail.example.com:587"
from = "bk@example.com"
to = ["ops@example.com"]
username = "bk"
password_file = "/etc/bk/smtp.pass"

[jobs.alpha]
sources = ["sqlite:///a.db"]
`
	c, err := Load(writeFile(t, dir, "bk.toml", cfg, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.JobNames(); !slices.Equal(got, []string{"zeta", "alpha"}) {
		t.Errorf("jobs not in file order: %v", got)
	}
	z := c.Jobs[0]
	if c.Repository.S3 != (S3{Region: "eu-central-1", Lookup: "path", CAFile: "/etc/ssl/ca.pem", StorageClass: "STANDARD_IA", Timeout: 10 * time.Minute}) {
		t.Errorf("s3: %+v", c.Repository.S3)
	}
	if z.HookTimeout != 90*time.Second || z.Keep.Last != 3 || z.Keep.Within != "1y6m" || !z.Check.RestoreTest ||
		z.Check.ReadDataSubset != "10%" || len(z.Check.Scratch) != 2 || z.Notify.Email == nil ||
		!z.Notify.Email.StartTLS || !z.Notify.Wants(OnSuccess) || z.Notify.Wants(OnSuspicious) {
		t.Errorf("job: %+v, email %+v", *z, z.Notify.Email)
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name, body string
		line       int
		msg        string
	}{
		{"syntax", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"\n", 4, "TOML syntax"},
		{"unknown key", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nkeep_dayly = 7\n", 5, "did you mean keep_daily?"},
		{"unknown top", "[repository]\npath = \"/r\"\n\n[job.a]\nsources = [\"/x\"]\n", 4, "unknown key job in the top level; did you mean jobs?"},
		{"misplaced", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nhealthchecks = \"https://h\"\n", 5, "it belongs in [jobs.NAME.notify]"},
		{"no repository", "[jobs.a]\nsources = [\"/x\"]\n", 1, "no [repository]"},
		{"empty path", "[repository]\npath = \"\"\n", 2, "repository.path is empty"},
		{"relative path", "[repository]\npath = \"backups\"\n", 2, "absolute folder"},
		{"s3 password", "[repository]\npath = \"s3:https://key:secret@host/b\"\n", 2, "credentials in the URL"},
		{"both passwords", "[repository]\npath = \"/r\"\npassword_file = \"/p\"\npassword_command = \"cat /p\"\n", 4, "not both"},
		{"wrong type", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nkeep_daily = \"7\"\n", 5, "keep_daily must be an integer, not a string"},
		{"string for list", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = \"/x\"\n", 4, `like sources = ["/x"]`},
		{"negative keep", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nkeep_weekly = -1\n", 5, "negative"},
		{"no sources", "[repository]\npath = \"/r\"\n\n[jobs.a]\nschedule = \"daily\"\n", 4, "job a has no sources"},
		{"empty sources", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = []\n", 4, "empty sources list"},
		{"empty source", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\n  \"/x\",\n  \"\",\n]\n", 6, "sources[1] is empty"},
		{"unknown engine", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\n  \"mongodb://h/db\",\n]\n", 5, `unknown engine "mongodb"`},
		{"db password", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"postgres://u:hunter2@h/db\"]\n", 4, "db_password_file"},
		{"relative folder", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"./data\"]\n", 4, "relative"},
		{"sqlite relative", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"sqlite://app.db\"]\n", 4, "sqlite:///abs/path"},
		{"pg no db", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"postgres://h\"]\n", 4, "names no database"},
		{"duplicate source", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\",\n \"/x\"]\n", 5, "listed twice"},
		{"bad schedule", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nschedule = \"dayly\"\n", 5, `calendar expression "dayly"`},
		{"bad time", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nschedule = \"*-*-* 24:00\"\n", 5, "out of range 0..23"},
		{"bad subset", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\n[jobs.a.check]\nread_data_subset = \"0/7\"\n", 6, "read_data_subset"},
		{"bad within", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nkeep_within = \"30x\"\n", 5, "keep_within"},
		{"prune without keep", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nprune_schedule = \"weekly\"\n", 5, "no keep_*"},
		{"bad job name", "[repository]\npath = \"/r\"\n\n[jobs.\"my app\"]\nsources = [\"/x\"]\n", 4, "names systemd units"},
		{"bad hook timeout", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nhook_timeout = \"5 minutes\"\n", 5, "positive duration"},
		{"empty notify", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\n\n[jobs.a.notify]\non = [\"failure\"]\n", 6, "sets no webhook"},
		{"bad event", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\n[jobs.a.notify]\nwebhook = \"https://h\"\non = [\"failure\", \"always\"]\n", 7, `unknown event "always"`},
		{"bad webhook", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\n[jobs.a.notify]\nwebhook = \"hooks.example.com\"\n", 6, "not an http"},
		{"email half login", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\n[jobs.a.notify.email]\nsmtp = \"m:25\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nusername = \"u\"\n", 5, "username and password_file together"},
		{"scratch without test", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\n[jobs.a.check]\nscratch = [\"postgres://h\"]\n", 6, "restore_test = true"},
		{"s3 table on local", "[repository]\npath = \"/r\"\n[repository.s3]\nregion = \"x\"\n", 3, "applies only"},
		{"inline table key", "[repository]\npath = \"/r\"\n[jobs.a]\nsources = [\"/x\"]\nnotify = { webhook = \"https://h\",\n  hook = 1 }\n", 6, "unknown key hook in [jobs.a.notify]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "bk.toml", tc.body, 0o644)
			_, err := Load(path)
			var perr *Errors
			if !errors.As(err, &perr) {
				t.Fatalf("Load: %v, want *Errors", err)
			}
			for _, p := range perr.List {
				if p.Line == tc.line && strings.Contains(p.Msg, tc.msg) && p.File == path {
					if !strings.Contains(err.Error(), path+":"+strconv.Itoa(tc.line)+": ") {
						t.Errorf("Error() lacks FILE:LINE: %s", err)
					}
					if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "secret@") {
						t.Errorf("a password leaked: %s", err)
					}
					return
				}
			}
			t.Errorf("want a problem at line %d with %q, got:\n%s", tc.line, tc.msg, err)
		})
	}
}

func TestConfigAllProblemsReported(t *testing.T) {
	body := "[repository]\npath = \"\"\n[jobs.a]\nsources = [\"\"]\nkeep_dayly = 1\nkeep_weekly = -2\n"
	_, err := Load(writeFile(t, t.TempDir(), "bk.toml", body, 0o644))
	var perr *Errors
	if !errors.As(err, &perr) || len(perr.List) != 4 {
		t.Fatalf("want 4 problems, got %v", err)
	}
	for i, want := range []int{2, 4, 5, 6} {
		if perr.List[i].Line != want {
			t.Errorf("problem %d at line %d, want %d: %s", i, perr.List[i].Line, want, perr.List[i])
		}
	}
}

func TestConfigValidatePasswordFiles(t *testing.T) {
	path, pass := exampleFile(t, 0o644, "")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	probs := c.Validate(t.Context(), false)
	if len(probs) != 1 || probs[0].Line != 3 || !strings.Contains(probs[0].Msg, "group- or world-readable") ||
		strings.Contains(probs[0].Msg, "s3cret") {
		t.Errorf("0644 password file: %v", probs)
	}
	if err := os.Remove(pass); err != nil {
		t.Fatal(err)
	}
	probs = c.Validate(t.Context(), false)
	if len(probs) != 1 || probs[0].Line != 3 || !strings.Contains(probs[0].Msg, "no such file") {
		t.Errorf("missing password file: %v", probs)
	}
	if s := probs[0].String(); !strings.HasPrefix(s, path+":3: password_file: ") {
		t.Errorf("String() = %q", s)
	}
}

func TestConfigValidateSchedules(t *testing.T) {
	testenv.RequireCommand(t, "systemd-analyze")
	// Syntactically plausible, but there is no February 30th.
	path, _ := exampleFile(t, 0o600, "")
	body, _ := os.ReadFile(path)
	writeFile(t, filepath.Dir(path), "bk.toml", strings.Replace(string(body), `schedule = "daily"`, `schedule = "*-02-30 25:00"`, 1), 0o644)
	if _, err := Load(path); err == nil {
		t.Fatal("25:00 accepted by Load")
	}
	writeFile(t, filepath.Dir(path), "bk.toml", strings.Replace(string(body), `schedule = "daily"`, `schedule = "Mon..Fri 02:30 Not/AZone"`, 1), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	probs := c.Validate(t.Context(), false)
	if len(probs) != 1 || probs[0].Line != 7 || !strings.Contains(probs[0].Msg, "systemd-analyze") {
		t.Errorf("Validate: %v", probs)
	}
}

// closedPort returns a local TCP address on which nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestConfigValidateConnect(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "repo.pass", "s3cret\n", 0o600)
	repoDir := filepath.Join(dir, "repo")
	if err := os.MkdirAll(repoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, repoDir, "config", "x", 0o600)
	db := writeFile(t, dir, "app.db", "x", 0o600)
	closed := closedPort(t)
	body := "[repository]\npath = \"" + repoDir + "\"\npassword_file = \"" + filepath.Join(dir, "repo.pass") + "\"\n\n" +
		"[jobs.a]\nsources = [\n  \"sqlite://" + db + "\",\n  \"" + dir + "\",\n  \"postgres://u@" + closed + "/db\",\n  \"sqlite:///nonexistent/x.db\",\n]\n"
	c, err := Load(writeFile(t, dir, "bk.toml", body, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	if probs := c.Validate(t.Context(), false); len(probs) != 0 {
		t.Errorf("without connect: %v", probs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*ConnectTimeout)
	defer cancel()
	probs := c.Validate(ctx, true)
	if len(probs) != 2 || probs[0].Line != 9 || !strings.Contains(probs[0].Msg, "cannot connect to "+closed) ||
		probs[1].Line != 10 || !strings.Contains(probs[1].Msg, "no such file") {
		t.Errorf("connect: %v", probs)
	}
}

func TestConfigValidateConnectPostgres(t *testing.T) {
	testenv.Require(t, "PostgreSQL", "127.0.0.1:5432")
	path, _ := exampleFile(t, 0o600, "")
	body, _ := os.ReadFile(path)
	writeFile(t, filepath.Dir(path), "bk.toml", strings.Replace(string(body), `"sqlite:///var/lib/app/app.db", `, "", 1), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Validate(t.Context(), true) {
		if p.Line != 2 { // the repository /var/backups/bk need not exist here
			t.Errorf("problem: %s", p)
		}
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	old := systemPath
	systemPath = filepath.Join(dir, "etc-bk.toml")
	t.Cleanup(func() { systemPath = old })
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	if p, err := Find("/given.toml"); err != nil || p != "/given.toml" {
		t.Errorf("flag: %q %v", p, err)
	}
	if _, err := Find(""); !errors.Is(err, ErrNoConfig) {
		t.Errorf("none: %v", err)
	}
	user := filepath.Join(dir, "xdg", "bk", "bk.toml")
	if err := os.MkdirAll(filepath.Dir(user), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(user), "bk.toml", "", 0o600)
	if p, err := Find(""); err != nil || p != user {
		t.Errorf("user: %q %v", p, err)
	}
	writeFile(t, dir, "etc-bk.toml", "", 0o600)
	if p, err := Find(""); err != nil || p != systemPath {
		t.Errorf("system: %q %v", p, err)
	}
}

// TestReadmeExample loads the complete example config of README.md, so the
// documentation cannot drift from what bk accepts.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Complete example config")
	if !ok {
		t.Fatal("README.md has no complete example config")
	}
	_, block, ok := strings.Cut(after, "```toml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the example config is not in a toml block")
	}
	path := filepath.Join(t.TempDir(), "bk.toml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("the README's example config does not load:\n%v", err)
	}
	if len(cfg.Jobs) != 2 || cfg.Jobs[0].Name != "app" || !cfg.Jobs[0].Keep.Any() || cfg.Jobs[0].Notify.Email == nil {
		t.Fatalf("example config: %+v", cfg)
	}
}
