// Package schedule turns bk's configured jobs into systemd units and
// crontab lines, and installs or removes the units.
//
// A job has up to three schedules, each of which becomes one oneshot
// service and one timer:
//
//	snapshot  bk-JOB.service        bk --config FILE run JOB
//	prune     bk-JOB-prune.service  bk --config FILE run JOB --only prune
//	check     bk-JOB-check.service  bk --config FILE run JOB --only check
//
// (with the matching bk-JOB*.timer). A snapshot run also applies the job's
// retention unless the job has a separate prune schedule; that decision is
// made by `bk run`, which reads the same configuration.
//
// Schedules are systemd calendar expressions (OnCalendar=, see
// systemd.time(7)), including the shorthands daily, weekly and so on.
// Units passes them through after a syntactic check; VerifyCalendar asks
// systemd-analyze for the authoritative answer. Crontab translates the
// shorthands and the simple "[WEEKDAYS] [*-MM-DD] HH:MM[:00]" forms to cron
// and reports anything richer as an error naming the job.
//
// Every file this package writes starts with Marker. Install refuses to
// overwrite, and Remove and RemoveStale refuse to delete, a unit without it,
// so a hand-written unit that happens to be called bk-something is never
// touched.
//
// Generation is pure: Units and Crontab do no I/O. Install, Remove and
// RemoveStale touch only the given directory; running systemctl is left to
// the caller, who can print or execute the argv lists of EnableCommands and
// DisableCommands.
package schedule
