// Package config is bk's configuration file: one TOML file naming the
// repository and the jobs (sources, schedules, retention, checks, hooks and
// notifications) that `bk run` and the systemd timers carry out.
//
// Load reads and validates a file without touching anything else on the
// machine; every problem it finds is reported at once, each as FILE:LINE:
// message, with the line of the key concerned. Validate then checks what
// needs the machine: credential files and, on request, that the sources
// answer. A minimal file:
//
//	[repository]
//	path = "/var/backups/bk"                 # or "s3:https://host/bucket/prefix"
//	password_file = "/etc/bk/repo.pass"
//
//	[jobs.app]
//	sources = ["sqlite:///var/lib/app/app.db", "postgres://backup@127.0.0.1/app"]
//	schedule = "daily"                       # a systemd OnCalendar expression
//	keep_daily = 7
//	keep_weekly = 4
//	before = ["systemctl stop app"]
//	after = ["systemctl start app"]
//
//	[jobs.app.notify]
//	webhook = "https://hooks.example.com/bk"
//	healthchecks = "https://hc.example.com/ping/UUID"
//
// Paths in the file must be absolute: the file is read by timers whose
// working directory is not the user's. Passwords never appear in it, only the
// names of owner-only files holding them.
package config
