package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// calendarShorthands are the named OnCalendar expressions of systemd.time(7).
var calendarShorthands = map[string]bool{
	"minutely": true, "hourly": true, "daily": true, "weekly": true, "monthly": true,
	"yearly": true, "annually": true, "quarterly": true, "semiannually": true,
}

// weekdays are the day names systemd reads, in lower case.
var weekdays = map[string]bool{
	"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true,
	"monday": true, "tuesday": true, "wednesday": true, "thursday": true, "friday": true, "saturday": true, "sunday": true,
}

// CheckCalendar checks the form of a systemd OnCalendar expression: a
// shorthand (minutely, hourly, daily, weekly, monthly, yearly, annually,
// quarterly, semiannually) or "[WEEKDAYS] [[YEAR-]MONTH-DAY] [HH:MM[:SS]]
// [TIMEZONE]", each component a number, "*", a list (a,b), a range (a..b)
// or a repetition (a/n). It is a sanity check of the syntax only: the
// authority is `systemd-analyze calendar`, which Validate runs when it is
// installed.
func CheckCalendar(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return errors.New("empty calendar expression")
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("calendar expression %q: %s (want daily, hourly, weekly, ... or e.g. \"Mon..Fri *-*-* 02:30\", see systemd.time(7))",
			expr, fmt.Sprintf(format, args...))
	}
	fields := strings.Fields(expr)
	if len(fields) == 1 && calendarShorthands[strings.ToLower(fields[0])] {
		return nil
	}
	i, parts := 0, 0
	if i < len(fields) && isWeekdays(fields[i]) {
		i++
		parts++
	}
	if i < len(fields) && !strings.Contains(fields[i], ":") && strings.ContainsAny(fields[i], "-~") && startsNumeric(fields[i]) {
		if err := checkDate(fields[i]); err != nil {
			return bad("date %q: %v", fields[i], err)
		}
		i++
		parts++
	}
	if i < len(fields) && strings.Contains(fields[i], ":") {
		if err := checkTime(fields[i]); err != nil {
			return bad("time %q: %v", fields[i], err)
		}
		i++
		parts++
	}
	if parts == 0 {
		return bad("cannot read %q", fields[0])
	}
	if i < len(fields) && isTimezone(fields[i]) {
		i++
	}
	if i < len(fields) {
		return bad("cannot read %q", fields[i])
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
		if !weekdays[a] || isRange && !weekdays[b] {
			return false
		}
	}
	return true
}

// isTimezone reports whether s looks like a time zone (UTC, Europe/Berlin).
func isTimezone(s string) bool {
	if s == "" || !(s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+-", r)) {
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
	limits := [][2]int{{1, 12}, {1, 31}}
	if len(parts) == 3 {
		limits = append([][2]int{{1970, 2199}}, limits...)
	}
	for i, p := range parts {
		if err := checkComponent(p, limits[i][0], limits[i][1], false); err != nil {
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
	limits := [][2]int{{0, 23}, {0, 59}, {0, 60}}
	for i, p := range parts {
		if err := checkComponent(p, limits[i][0], limits[i][1], i == 2); err != nil {
			return err
		}
	}
	return nil
}

// checkComponent checks one date or time component: "*" or numbers within
// [lo, hi], as lists (a,b), ranges (a..b) and repetitions (a/n).
func checkComponent(s string, lo, hi int, fraction bool) error {
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
				return err
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
