package schedule

import (
	"fmt"
	"strings"
)

// Crontab returns a file for /etc/cron.d (one line per schedule, with the
// user field set to opts.User or root) running the same commands as the
// units of Units, niced to opts.Nice. For a personal crontab, drop the
// sixth field.
//
// The output of each run goes to syslog (the journal on systemd machines)
// through `logger -t bk-JOB[-KIND]`, so nothing needs rotating and no log
// folder needs to exist or be writable; the header comment says so.
// Cron neither delays randomly nor catches up on runs missed while the
// machine was off, and it does not sandbox the command; the systemd units
// do all three.
//
// An expression CronSpec cannot translate is an error naming the job.
func Crontab(jobs []Job, opts Options) (string, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	plans, err := plan(jobs)
	if err != nil {
		return "", err
	}
	user := opts.User
	if user == "" {
		user = "root"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s. Do not edit: change the configuration\n", Marker, opts.ConfigFile)
	b.WriteString("# and run `bk schedule` again. Install as /etc/cron.d/bk.\n")
	b.WriteString("# The output of each run goes to syslog tagged bk-JOB[-KIND]\n")
	b.WriteString("# (journalctl -t bk-JOB, or grep bk- /var/log/syslog).\n")
	b.WriteString("SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
	for _, p := range plans {
		spec, err := CronSpec(p.expr)
		if err != nil {
			return "", fmt.Errorf("job %q %s schedule: %w", p.job, p.kind, err)
		}
		argv := append([]string{"nice", "-n", fmt.Sprint(opts.Nice)}, Argv(p.job, p.kind, opts)...)
		fmt.Fprintf(&b, "%s %s %s 2>&1 | logger -t %s\n", spec, user, cronCommand(argv), UnitBase(p.job, p.kind))
	}
	return b.String(), nil
}

// cronCommand renders argv as the command field of a crontab line: words
// are quoted for sh, and '%', which cron turns into a newline, is escaped
// with a backslash (cron removes it before the shell sees the command).
func cronCommand(argv []string) string {
	words := make([]string, len(argv))
	for i, w := range argv {
		words[i] = strings.ReplaceAll(shellQuote(w), "%", `\%`)
	}
	return strings.Join(words, " ")
}

// shellQuote quotes w for sh when it holds anything but safe characters.
func shellQuote(w string) string {
	safe := w != "" && !strings.ContainsFunc(w, func(r rune) bool {
		return !(isNameRune(r) || strings.ContainsRune("/.,:=+@", r))
	})
	if safe {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
