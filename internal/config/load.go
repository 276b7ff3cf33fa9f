package config

import (
	"fmt"
	"github.com/bk-backup/bk/internal/schedule"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/store/s3"
)

// The keys each table knows. Adding a key means adding it here and reading
// it in the matching loader method.
var (
	topKeys        = []string{"repository", "jobs"}
	repositoryKeys = []string{"path", "password_file", "password_command", "cache_dir", "s3"}
	s3Keys         = []string{"region", "lookup", "ca_file", "storage_class", "timeout"}
	jobKeys        = []string{"sources", "tags", "db_password_file", "schedule", "prune_schedule", "check_schedule",
		"keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", "keep_tags",
		"check", "before", "after", "on_error", "hook_timeout", "notify"}
	checkKeys  = []string{"read_data_subset", "restore_test", "scratch"}
	notifyKeys = []string{"webhook", "healthchecks", "ntfy", "email", "on"}
	emailKeys  = []string{"smtp", "from", "to", "username", "password_file", "starttls"}
)

// tableOf names, for the hint on a misplaced key, the table each key
// belongs to.
var tableOf = func() map[string]string {
	m := map[string]string{}
	for _, t := range []struct {
		name string
		keys []string
	}{
		{"[repository]", repositoryKeys}, {"[repository.s3]", s3Keys}, {"[jobs.NAME]", jobKeys},
		{"[jobs.NAME.check]", checkKeys}, {"[jobs.NAME.notify]", notifyKeys}, {"[jobs.NAME.notify.email]", emailKeys},
	} {
		for _, k := range t.keys {
			if _, dup := m[k]; !dup {
				m[k] = t.name
			}
		}
	}
	return m
}()

// jobName is what a job may be called: it names systemd units.
var jobName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// loader checks a decoded document, collecting problems with their lines.
type loader struct {
	file     string
	lines    lineMap
	problems []Problem
}

// line returns the line of path or of its nearest ancestor.
func (l *loader) line(path []string) int {
	for n := len(path); n > 0; n-- {
		if ln, ok := l.lines[pathKey(path[:n])]; ok {
			return ln
		}
	}
	return 0
}

// errf records a problem at the line of path.
func (l *loader) errf(path []string, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: l.line(path), Msg: fmt.Sprintf(format, args...)})
}

// keyName renders path as a dotted TOML key ("jobs.app.sources[1]").
func keyName(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if n, ok := strings.CutPrefix(p, "#"); ok {
			b.WriteString("[" + n + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if jobName.MatchString(p) {
			b.WriteString(p)
		} else {
			fmt.Fprintf(&b, "%q", p)
		}
	}
	return b.String()
}

// tableName renders path as a table header ("[jobs.app]").
func tableName(path []string) string {
	if len(path) == 0 {
		return "the top level"
	}
	return "[" + keyName(path) + "]"
}

// typeName describes a decoded TOML value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

// table checks that v, found at path, is a table whose keys are all in
// known, and returns it (nil when it is not a table).
func (l *loader) table(path []string, v any, known []string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		l.errf(path, "%s must be a table, not %s", keyName(path), typeName(v))
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		sub := append(slices.Clone(path), k)
		msg := fmt.Sprintf("unknown key %s in %s", quoteKey(k), tableName(path))
		if s := closest(k, known); s != "" {
			msg += "; did you mean " + s + "?"
		} else if t, ok := tableOf[k]; ok {
			msg += "; it belongs in " + t
		} else {
			msg += " (known: " + strings.Join(known, ", ") + ")"
		}
		l.errf(sub, "%s", msg)
	}
	return m
}

// quoteKey renders one key as it would be written in TOML.
func quoteKey(k string) string {
	if jobName.MatchString(k) {
		return k
	}
	return fmt.Sprintf("%q", k)
}

// closest returns the known key nearest to k when it is near enough to be
// a typo, else "".
func closest(k string, known []string) string {
	best, bestD := "", 0
	for _, c := range known {
		d := editDistance(strings.ToLower(k), c)
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && (bestD <= 2 || bestD <= len(k)/3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b (in bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// str reads the optional string key of m at path; a present key must be a
// non-empty string.
func (l *loader) str(path []string, m map[string]any, key string) string {
	v, ok := m[key]
	if !ok {
		return ""
	}
	p := append(slices.Clone(path), key)
	s, ok := v.(string)
	switch {
	case !ok:
		l.errf(p, "%s must be a string, not %s", keyName(p), typeName(v))
	case strings.TrimSpace(s) == "":
		l.errf(p, "%s is empty; set a value or remove the key", keyName(p))
		return ""
	}
	return s
}

// absPath reads an optional string key that names a file or folder: it
// must be an absolute path.
func (l *loader) absPath(path []string, m map[string]any, key string) string {
	s := l.str(path, m, key)
	if s != "" && !filepath.IsAbs(s) {
		p := append(slices.Clone(path), key)
		l.errf(p, "%s = %q is not an absolute path (bk may run from any folder, e.g. under a systemd timer)", keyName(p), s)
	}
	return s
}

// strList reads the optional array of strings key of m at path; the array
// and its strings must not be empty.
func (l *loader) strList(path []string, m map[string]any, key string) []string {
	v, ok := m[key]
	if !ok {
		return nil
	}
	p := append(slices.Clone(path), key)
	arr, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			l.errf(p, "%s must be an array of strings, like %s = [%q]", keyName(p), key, s)
		} else {
			l.errf(p, "%s must be an array of strings, not %s", keyName(p), typeName(v))
		}
		return nil
	}
	if len(arr) == 0 {
		l.errf(p, "%s is empty; list at least one value or remove the key", keyName(p))
		return nil
	}
	// out keeps the indexes of arr, so that callers find each element's
	// line; a bad element is "" (Load fails then anyway).
	out := make([]string, len(arr))
	for i, e := range arr {
		ep := append(slices.Clone(p), elem(i))
		s, ok := e.(string)
		switch {
		case !ok:
			l.errf(ep, "%s must be a string, not %s", keyName(ep), typeName(e))
		case strings.TrimSpace(s) == "":
			l.errf(ep, "%s is empty", keyName(ep))
		default:
			out[i] = s
		}
	}
	return out
}

// count reads an optional non-negative integer key.
func (l *loader) count(path []string, m map[string]any, key string) int {
	v, ok := m[key]
	if !ok {
		return 0
	}
	p := append(slices.Clone(path), key)
	n, ok := v.(int64)
	switch {
	case !ok:
		l.errf(p, "%s must be an integer, not %s", keyName(p), typeName(v))
		return 0
	case n < 0:
		l.errf(p, "%s = %d is negative; use 0 or remove the key to keep none by this rule", keyName(p), n)
		return 0
	case n > 1<<20:
		l.errf(p, "%s = %d is out of range", keyName(p), n)
		return 0
	}
	return int(n)
}

// boolean reads an optional boolean key; def when absent.
func (l *loader) boolean(path []string, m map[string]any, key string, def bool) bool {
	v, ok := m[key]
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		p := append(slices.Clone(path), key)
		l.errf(p, "%s must be true or false, not %s", keyName(p), typeName(v))
		return def
	}
	return b
}

// duration reads an optional positive Go duration ("90s", "5m", "1h30m").
func (l *loader) duration(path []string, m map[string]any, key string) time.Duration {
	p := append(slices.Clone(path), key)
	if v, ok := m[key]; ok {
		if _, isStr := v.(string); !isStr {
			l.errf(p, "%s must be a duration string like \"90s\", \"5m\" or \"1h30m\", not %s", keyName(p), typeName(v))
			return 0
		}
	}
	s := l.str(path, m, key)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.errf(p, "%s = %q is not a positive duration like \"90s\", \"5m\" or \"1h30m\"", keyName(p), s)
		return 0
	}
	return d
}

// sub returns the optional sub-table key of m (nil when absent or wrong).
func (l *loader) sub(path []string, m map[string]any, key string, known []string) ([]string, map[string]any) {
	p := append(slices.Clone(path), key)
	v, ok := m[key]
	if !ok {
		return p, nil
	}
	return p, l.table(p, v, known)
}

// config checks the whole document.
func (l *loader) config(raw map[string]any) *Config {
	c := &Config{}
	top := l.table(nil, raw, topKeys)
	if top == nil {
		return c
	}
	if v, ok := top["repository"]; ok {
		p := []string{"repository"}
		if m := l.table(p, v, repositoryKeys); m != nil {
			c.Repository = l.repository(p, m)
		}
	} else {
		l.problems = append(l.problems, Problem{File: l.file, Line: 1,
			Msg: "no [repository] table: add one with path = \"/var/backups/bk\" (or \"s3:https://host/bucket/prefix\")"})
	}
	if v, ok := top["jobs"]; ok {
		jobs, ok := v.(map[string]any)
		if !ok {
			l.errf([]string{"jobs"}, "jobs must be a table of jobs, like [jobs.app], not %s", typeName(v))
		}
		for name, jv := range jobs {
			p := []string{"jobs", name}
			if !jobName.MatchString(name) {
				l.errf(p, "job name %q: use only letters, digits, '_' and '-' (it names systemd units)", name)
			}
			m := l.table(p, jv, jobKeys)
			if m == nil {
				continue
			}
			c.Jobs = append(c.Jobs, l.job(p, name, m))
		}
		slices.SortFunc(c.Jobs, func(a, b *Job) int {
			if a.line != b.line {
				return a.line - b.line
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	return c
}

// repository checks the [repository] table m at path.
func (l *loader) repository(path []string, m map[string]any) Repository {
	var r Repository
	r.Path = l.str(path, m, "path")
	pp := append(slices.Clone(path), "path")
	isS3 := false
	switch _, present := m["path"]; {
	case !present:
		l.errf(path, "[repository] has no path: set path = \"/var/backups/bk\" or \"s3:https://host/bucket/prefix\"")
	case r.Path == "":
	case strings.HasPrefix(r.Path, "s3:"):
		isS3 = true
		if _, err := s3.ParseURL(r.Path); err != nil {
			l.errf(pp, "repository.path: %v", err)
		}
	default:
		local := strings.TrimPrefix(r.Path, "local:")
		if !filepath.IsAbs(local) {
			l.errf(pp, "repository.path = %q: want an absolute folder or s3:https://host/bucket[/prefix]", r.Path)
		}
	}
	r.PasswordFile = l.absPath(path, m, "password_file")
	r.PasswordCommand = l.str(path, m, "password_command")
	if r.PasswordFile != "" && r.PasswordCommand != "" {
		l.errf(append(slices.Clone(path), "password_command"), "set password_file or password_command, not both")
	}
	r.CacheDir = l.absPath(path, m, "cache_dir")
	if sp, sm := l.sub(path, m, "s3", s3Keys); sm != nil {
		if !isS3 && r.Path != "" {
			l.errf(sp, "[repository.s3] applies only to a path starting with s3:")
		}
		r.S3 = S3{
			Region:       l.str(sp, sm, "region"),
			Lookup:       l.str(sp, sm, "lookup"),
			CAFile:       l.absPath(sp, sm, "ca_file"),
			StorageClass: l.str(sp, sm, "storage_class"),
			Timeout:      l.duration(sp, sm, "timeout"),
		}
		switch r.S3.Lookup {
		case "", s3.LookupAuto, s3.LookupDNS, s3.LookupPath:
		default:
			l.errf(append(slices.Clone(sp), "lookup"), "repository.s3.lookup = %q: want \"auto\", \"dns\" or \"path\"", r.S3.Lookup)
		}
	}
	return r
}

// job checks the [jobs.NAME] table m at path.
func (l *loader) job(path []string, name string, m map[string]any) *Job {
	j := &Job{Name: name, line: l.line(path), HookTimeout: DefaultHookTimeout}
	sp := append(slices.Clone(path), "sources")
	switch v, ok := m["sources"]; {
	case !ok:
		l.errf(path, "job %s has no sources: add sources = [\"postgres://user@host/db\", ...]", quoteKey(name))
	case isEmptyArray(v):
		l.errf(sp, "job %s has an empty sources list: name at least one source", quoteKey(name))
	default:
		j.Sources = l.strList(path, m, "sources")
	}
	for i, src := range j.Sources {
		ep := append(slices.Clone(sp), elem(i))
		if src == "" {
			continue // reported
		}
		if err := checkSource(src); err != nil {
			l.errf(ep, "%s: %v", keyName(ep), err)
		}
		if slices.Index(j.Sources, src) < i {
			l.errf(ep, "source %s is listed twice", redactString(src))
		}
	}
	j.Tags = l.strList(path, m, "tags")
	for i, t := range j.Tags {
		if strings.ContainsAny(t, ", \t\n") {
			ep := append(slices.Clone(path), "tags", elem(i))
			l.errf(ep, "tag %q: a tag holds no commas or spaces", t)
		}
	}
	j.DBPasswordFile = l.absPath(path, m, "db_password_file")

	for _, k := range []struct {
		key string
		dst *string
	}{{"schedule", &j.Schedule}, {"prune_schedule", &j.PruneSchedule}, {"check_schedule", &j.CheckSchedule}} {
		*k.dst = l.str(path, m, k.key)
		if *k.dst != "" {
			if err := schedule.CheckCalendar(*k.dst); err != nil {
				l.errf(append(slices.Clone(path), k.key), "%s: %v", k.key, err)
			}
		}
	}

	j.Keep = Keep{
		Last:    l.count(path, m, "keep_last"),
		Hourly:  l.count(path, m, "keep_hourly"),
		Daily:   l.count(path, m, "keep_daily"),
		Weekly:  l.count(path, m, "keep_weekly"),
		Monthly: l.count(path, m, "keep_monthly"),
		Yearly:  l.count(path, m, "keep_yearly"),
		Within:  l.str(path, m, "keep_within"),
		Tags:    l.strList(path, m, "keep_tags"),
	}
	if j.Keep.Within != "" {
		if _, err := repo.ParseDuration(j.Keep.Within); err != nil {
			l.errf(append(slices.Clone(path), "keep_within"), "keep_within: %v", err)
		}
	}
	if j.PruneSchedule != "" && !j.Keep.Any() {
		l.errf(append(slices.Clone(path), "prune_schedule"), "prune_schedule is set but no keep_* says what to keep")
	}

	if cp, cm := l.sub(path, m, "check", checkKeys); cm != nil {
		j.Check = Check{
			ReadDataSubset: l.str(cp, cm, "read_data_subset"),
			RestoreTest:    l.boolean(cp, cm, "restore_test", false),
			Scratch:        l.strList(cp, cm, "scratch"),
		}
		if s := j.Check.ReadDataSubset; s != "" {
			if err := repo.ValidSubset(s); err != nil {
				l.errf(append(slices.Clone(cp), "read_data_subset"), "read_data_subset: %v", err)
			}
		}
		for i, s := range j.Check.Scratch {
			ep := append(slices.Clone(cp), "scratch", elem(i))
			if err := checkScratch(s); s != "" && err != nil {
				l.errf(ep, "%s: %v", keyName(ep), err)
			}
		}
		if len(j.Check.Scratch) > 0 && !j.Check.RestoreTest {
			l.errf(append(slices.Clone(cp), "scratch"), "scratch is used only with restore_test = true")
		}
	}

	j.Before = l.strList(path, m, "before")
	j.After = l.strList(path, m, "after")
	j.OnError = l.strList(path, m, "on_error")
	if d := l.duration(path, m, "hook_timeout"); d > 0 {
		j.HookTimeout = d
	}

	if np, nm := l.sub(path, m, "notify", notifyKeys); nm != nil {
		j.Notify = l.notify(np, nm)
	} else {
		j.Notify.On = []string{OnFailure, OnSuspicious}
	}
	return j
}

// notify checks a [jobs.NAME.notify] table.
func (l *loader) notify(path []string, m map[string]any) Notify {
	n := Notify{
		Webhook:      l.str(path, m, "webhook"),
		Healthchecks: l.str(path, m, "healthchecks"),
		Ntfy:         l.str(path, m, "ntfy"),
	}
	for _, k := range []struct{ key, v string }{{"webhook", n.Webhook}, {"healthchecks", n.Healthchecks}, {"ntfy", n.Ntfy}} {
		if k.v != "" {
			if err := checkHTTPURL(k.v); err != nil {
				l.errf(append(slices.Clone(path), k.key), "%s: %v", k.key, err)
			}
		}
	}
	if ep, em := l.sub(path, m, "email", emailKeys); em != nil {
		n.Email = l.email(ep, em)
	}
	if _, ok := m["on"]; ok {
		n.On = l.strList(path, m, "on")
		for i, e := range n.On {
			if e != "" && e != OnSuccess && e != OnFailure && e != OnSuspicious {
				l.errf(append(slices.Clone(path), "on", elem(i)), "on: unknown event %q; want \"success\", \"failure\" or \"suspicious\"", e)
			}
		}
	} else {
		n.On = []string{OnFailure, OnSuspicious}
	}
	if !hasAny(m, "webhook", "healthchecks", "ntfy", "email") {
		l.errf(path, "%s sets no webhook, healthchecks, ntfy or email", tableName(path))
	}
	return n
}

// isEmptyArray reports whether v is an array without elements.
func isEmptyArray(v any) bool {
	a, ok := v.([]any)
	return ok && len(a) == 0
}

// hasAny reports whether m has any of keys.
func hasAny(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// email checks a [jobs.NAME.notify.email] table.
func (l *loader) email(path []string, m map[string]any) *Email {
	e := &Email{
		SMTP:         l.str(path, m, "smtp"),
		From:         l.str(path, m, "from"),
		To:           l.strList(path, m, "to"),
		Username:     l.str(path, m, "username"),
		PasswordFile: l.absPath(path, m, "password_file"),
		StartTLS:     l.boolean(path, m, "starttls", true),
	}
	for _, k := range []struct{ key, v string }{{"smtp", e.SMTP}, {"from", e.From}} {
		if _, ok := m[k.key]; !ok {
			l.errf(path, "%s has no %s", tableName(path), k.key)
		}
	}
	if _, ok := m["to"]; !ok {
		l.errf(path, "%s has no to = [\"ops@example.com\"]", tableName(path))
	}
	if e.SMTP != "" {
		if h, p, ok := strings.Cut(e.SMTP, ":"); !ok || h == "" || p == "" || strings.Contains(e.SMTP, "/") {
			l.errf(append(slices.Clone(path), "smtp"), "smtp = %q: want host:port, like \"mail.example.com:587\"", e.SMTP)
		}
	}
	if e.From != "" && !strings.Contains(e.From, "@") {
		l.errf(append(slices.Clone(path), "from"), "from = %q is not a mail address", e.From)
	}
	for i, to := range e.To {
		if to != "" && !strings.Contains(to, "@") {
			l.errf(append(slices.Clone(path), "to", elem(i)), "to: %q is not a mail address", to)
		}
	}
	if (e.Username == "") != (e.PasswordFile == "") {
		l.errf(path, "%s: set username and password_file together (or neither, for no SMTP login)", tableName(path))
	}
	return e
}
