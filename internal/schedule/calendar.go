package schedule

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// shorthands maps systemd's calendar shorthands to cron. The keys are
// lower case; systemd matches them case-insensitively.
var shorthands = map[string]string{
	"minutely":     "* * * * *",
	"hourly":       "0 * * * *",
	"daily":        "0 0 * * *",
	"weekly":       "0 0 * * 1",
	"monthly":      "0 0 1 * *",
	"yearly":       "0 0 1 1 *",
	"annually":     "0 0 1 1 *",
	"quarterly":    "0 0 1 1,4,7,10 *",
	"semiannually": "0 0 1 1,7 *",
}

// weekdays maps systemd's weekday names, short and long, lower case, to
// cron's day numbers (Sunday is 0).
var weekdays = map[string]int{
	"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
}

// hint is appended to errors about expressions, to steer towards forms
// every consumer understands.
const hint = `use a shorthand such as "daily" or a form such as "Mon *-*-* 02:30" or "03:15"`

// CheckCalendar checks the form of a systemd OnCalendar expression without
// systemd: a shorthand (minutely, hourly, daily, weekly, monthly, yearly,
// annually, quarterly, semiannually) or "[WEEKDAYS] [[YEAR-]MONTH-DAY]
// [HH:MM[:SS]]", either followed by an optional time zone; each date and
// time component a number within its range, "*", a list (a,b), a range
// (a..b) or a repetition (a/n). It also rejects characters that never
// appear in an expression, so one cannot break out of a unit file line.
// It accepts some expressions systemd rejects; VerifyCalendar is the
// authoritative check. Errors match ErrInvalid.
func CheckCalendar(expr string) error {
	if hasControl(expr) {
		return fmt.Errorf("%w: calendar expression %q contains a control character", ErrInvalid, expr)
	}
	e := strings.TrimSpace(expr)
	if e == "" {
		return fmt.Errorf("%w: blank calendar expression; %s", ErrInvalid, hint)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: calendar expression %q: %s; %s", ErrInvalid, expr, fmt.Sprintf(format, args...), hint)
	}
	for _, r := range e {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" *:,./~+-_", r)) {
			return bad("unexpected character %q", r)
		}
	}
	fields := strings.Fields(e)
	if len(fields) > 1 && isZone(fields[len(fields)-1]) {
		fields = fields[:len(fields)-1]
	}
	if len(fields) == 1 {
		if _, ok := shorthands[strings.ToLower(fields[0])]; ok {
			return nil
		}
	}
	i := 0
	if i < len(fields) && isWeekdays(fields[i]) {
		i++
	}
	if i < len(fields) && !strings.Contains(fields[i], ":") && strings.ContainsAny(fields[i], "-~") && startsNumeric(fields[i]) {
		if err := checkDate(fields[i]); err != nil {
			return bad("date %q: %v", fields[i], err)
		}
		i++
	}
	if i < len(fields) && strings.Contains(fields[i], ":") {
		if err := checkTime(fields[i]); err != nil {
			return bad("time %q: %v", fields[i], err)
		}
		i++
	}
	switch {
	case i == 0:
		return bad("%q is not a weekday, shorthand, date or time", fields[0])
	case i < len(fields):
		return bad("unexpected %q", fields[i])
	}
	return nil
}

// startsNumeric reports whether s begins like a date component.
func startsNumeric(s string) bool {
	return s != "" && (s[0] == '*' || s[0] >= '0' && s[0] <= '9')
}

// isWeekdays reports whether s is a weekday list: names, ranges a..b, commas.
func isWeekdays(s string) bool {
	for item := range strings.SplitSeq(strings.ToLower(s), ",") {
		a, b, isRange := strings.Cut(item, "..")
		_, okA := weekdays[a]
		_, okB := weekdays[b]
		if !okA || isRange && !okB {
			return false
		}
	}
	return true
}

// checkDate checks [YEAR-]MONTH-DAY, where '~' may replace the last '-'
// (days counted from the end of the month).
func checkDate(s string) error {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '~' })
	if strings.Count(s, "~") > 1 || len(parts) < 2 || len(parts) > 3 || strings.Contains(s, "--") {
		return errors.New("want YEAR-MONTH-DAY or MONTH-DAY")
	}
	names, limits := []string{"month", "day"}, [][2]int{{1, 12}, {1, 31}}
	if len(parts) == 3 {
		names, limits = append([]string{"year"}, names...), append([][2]int{{1970, 2199}}, limits...)
	}
	for i, p := range parts {
		if err := checkComponent(names[i], p, limits[i][0], limits[i][1], false); err != nil {
			return err
		}
	}
	return nil
}

// checkTime checks HH:MM[:SS[.frac]].
func checkTime(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return errors.New("want HH:MM or HH:MM:SS")
	}
	names, limits := []string{"hour", "minute", "second"}, [][2]int{{0, 23}, {0, 59}, {0, 60}}
	for i, p := range parts {
		if err := checkComponent(names[i], p, limits[i][0], limits[i][1], i == 2); err != nil {
			return err
		}
	}
	return nil
}

// checkComponent checks one date or time component, called name: "*" or
// numbers within [lo, hi], as lists (a,b), ranges (a..b) and repetitions
// (a/n).
func checkComponent(name, s string, lo, hi int, fraction bool) error {
	if s == "" {
		return errors.New("empty component")
	}
	for item := range strings.SplitSeq(s, ",") {
		base, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return fmt.Errorf("bad repetition %q", item)
			}
		}
		if base == "*" {
			continue
		}
		a, b, isRange := strings.Cut(base, "..")
		vals := []string{a}
		if isRange {
			vals = append(vals, b)
		}
		for _, v := range vals {
			if err := checkNumber(v, lo, hi, fraction); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// checkNumber checks a number within [lo, hi] (with a fraction when allowed).
func checkNumber(s string, lo, hi int, fraction bool) error {
	whole, frac, hasFrac := strings.Cut(s, ".")
	n, err := strconv.Atoi(whole)
	if err != nil || whole == "" || whole[0] == '+' || whole[0] == '-' {
		return fmt.Errorf("%q is not a number", s)
	}
	if hasFrac {
		if _, ferr := strconv.Atoi(frac); !fraction || ferr != nil || frac == "" {
			return fmt.Errorf("%q is not a whole number", s)
		}
	}
	if n < lo || n > hi {
		return fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return nil
}

// isLetter reports whether r is an ASCII letter.
func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// isZone reports whether f may be a time zone ("UTC", "Europe/Berlin"): it
// starts with a letter and is not a weekday, which is what a trailing word
// of a calendar expression is otherwise.
func isZone(f string) bool {
	if !isLetter(rune(f[0])) {
		return false
	}
	head, _, _ := strings.Cut(f, ",")
	head, _, _ = strings.Cut(head, ".")
	_, day := weekdays[strings.ToLower(head)]
	return !day
}

// ErrNoSystemdAnalyze is returned by VerifyCalendar when systemd-analyze
// is not on PATH.
var ErrNoSystemdAnalyze = errors.New("systemd-analyze not found on PATH")

// verifyTimeout bounds one systemd-analyze run.
const verifyTimeout = 10 * time.Second

// VerifyCalendar asks `systemd-analyze calendar` whether systemd accepts
// expr. It returns nil if so, an error matching ErrInvalid with systemd's
// message if not, ErrNoSystemdAnalyze when the program is missing, and
// another error when it could not be run.
func VerifyCalendar(expr string) error {
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return ErrNoSystemdAnalyze
	}
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "calendar", "--", expr).CombinedOutput()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		return fmt.Errorf("systemd-analyze calendar %q: %w", expr, err)
	}
	msg := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	return fmt.Errorf("%w: systemd rejects calendar expression %q: %s; %s", ErrInvalid, expr, msg, hint)
}

// CronSpec translates a systemd calendar expression to the five time
// fields of a crontab line. It understands the shorthands and the form
//
//	[WEEKDAYS] [*-MONTHS-DAYS] HOURS:MINUTES[:00]
//
// where WEEKDAYS is a name, a list ("Mon,Thu") or a range ("Mon..Fri");
// MONTHS, DAYS, HOURS and MINUTES are "*" or lists of numbers and ranges
// ("1..5"), and HOURS and MINUTES may also hold "START/STEP" repetitions. Anything else
// (seconds, time zones, years, "~", a weekday together with a day of month,
// whose meaning differs between cron and systemd) is an error matching
// ErrInvalid.
func CronSpec(expr string) (string, error) {
	if err := CheckCalendar(expr); err != nil {
		return "", err
	}
	fields := strings.Fields(expr)
	if len(fields) > 1 && isZone(fields[len(fields)-1]) {
		return "", fmt.Errorf("%w: cannot translate %q to cron: cron has no time zones; %s", ErrInvalid, expr, hint)
	}
	if len(fields) == 1 {
		if spec, ok := shorthands[strings.ToLower(fields[0])]; ok {
			return spec, nil
		}
	}
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: cannot translate %q to cron: %s; %s", ErrInvalid, expr, fmt.Sprintf(format, args...), hint)
	}
	dow, month, dom, hour, minute := "*", "*", "*", "0", "0"
	if isLetter(rune(fields[0][0])) {
		d, err := cronWeekdays(fields[0])
		if err != nil {
			return fail("%v", err)
		}
		dow = d
		fields = fields[1:]
	}
	if len(fields) > 0 && strings.Contains(fields[0], "-") {
		parts := strings.Split(fields[0], "-")
		if len(parts) != 3 {
			return fail("date %q is not YEAR-MONTH-DAY", fields[0])
		}
		if parts[0] != "*" {
			return fail("cron has no year")
		}
		var err error
		if month, err = cronField(parts[1], 1, 12, false); err != nil {
			return fail("month: %v", err)
		}
		if dom, err = cronField(parts[2], 1, 31, false); err != nil {
			return fail("day: %v", err)
		}
		if dow != "*" && dom != "*" {
			return fail("cron runs when either the weekday or the day matches, systemd when both do")
		}
		fields = fields[1:]
	}
	if len(fields) > 0 {
		parts := strings.Split(fields[0], ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fail("time %q is not HH:MM or HH:MM:SS", fields[0])
		}
		if len(parts) == 3 && !isZeroNumber(parts[2]) {
			return fail("cron has no seconds")
		}
		var err error
		if hour, err = cronField(parts[0], 0, 23, true); err != nil {
			return fail("hour: %v", err)
		}
		if minute, err = cronField(parts[1], 0, 59, true); err != nil {
			return fail("minute: %v", err)
		}
		fields = fields[1:]
	}
	if len(fields) > 0 {
		return fail("unexpected %q (time zones are not supported)", strings.Join(fields, " "))
	}
	return strings.Join([]string{minute, hour, dom, month, dow}, " "), nil
}

// isZeroNumber reports whether s is "0" or "00".
func isZeroNumber(s string) bool { return s == "0" || s == "00" }

// cronWeekdays translates "Mon", "Mon,Thu", "Mon..Fri" or a mix to cron's
// day-of-week field.
func cronWeekdays(f string) (string, error) {
	var out []string
	for item := range strings.SplitSeq(f, ",") {
		from, to, isRange := strings.Cut(item, "..")
		a, ok := weekdays[strings.ToLower(from)]
		if !ok {
			return "", fmt.Errorf("%q is not a weekday", from)
		}
		if !isRange {
			out = append(out, fmt.Sprint(a))
			continue
		}
		b, ok := weekdays[strings.ToLower(to)]
		if !ok {
			return "", fmt.Errorf("%q is not a weekday", to)
		}
		// systemd's week runs Monday to Sunday, cron's Sunday (0) to
		// Saturday (6): "Mon..Sun" becomes "1-6,0".
		first, last := (a+6)%7, (b+6)%7 // positions in systemd's week
		if last < first {
			return "", fmt.Errorf("weekday range %q runs backwards (the week starts on Monday)", item)
		}
		sunday := last == 6
		if sunday {
			last--
		}
		switch {
		case first > last: // Sun..Sun
		case first == last:
			out = append(out, fmt.Sprint(first+1))
		default:
			out = append(out, fmt.Sprintf("%d-%d", first+1, last+1))
		}
		if sunday {
			out = append(out, "0")
		}
	}
	return strings.Join(out, ","), nil
}

// cronField translates one systemd date or time component with values in
// [lo, hi] to the cron field: "*" or a comma list of numbers, ranges
// "A..B" and, when step is set, repetitions "START/STEP" (every STEP from
// START).
func cronField(f string, lo, hi int, step bool) (string, error) {
	if f == "*" {
		return "*", nil
	}
	var out []string
	for item := range strings.SplitSeq(f, ",") {
		if from, to, isRange := strings.Cut(item, ".."); isRange {
			a, err := number(from, lo, hi)
			if err != nil {
				return "", err
			}
			b, err := number(to, lo, hi)
			if err != nil {
				return "", err
			}
			if b < a {
				return "", fmt.Errorf("range %q runs backwards", item)
			}
			out = append(out, fmt.Sprintf("%d-%d", a, b))
			continue
		}
		start, every, isStep := strings.Cut(item, "/")
		if isStep && !step {
			return "", fmt.Errorf("%q: repetition is only supported for hours and minutes", item)
		}
		n, err := number(start, lo, hi)
		if err != nil {
			return "", err
		}
		if !isStep {
			out = append(out, fmt.Sprint(n))
			continue
		}
		s, err := number(every, 1, hi)
		if err != nil {
			return "", err
		}
		out = append(out, fmt.Sprintf("%d-%d/%d", n, hi, s))
	}
	return strings.Join(out, ","), nil
}

// number parses a decimal of at most two digits in [lo, hi].
func number(s string, lo, hi int) (int, error) {
	if s == "" || len(s) > 2 {
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, lo, hi)
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a number from %d to %d", s, lo, hi)
		}
		n = n*10 + int(r-'0')
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is not from %d to %d", n, lo, hi)
	}
	return n, nil
}
