package metrics

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ContentType is the media type of Write's output, for an HTTP response.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Source is the state of one source of one job.
type Source struct {
	Job    string // the job's name
	Source string // the snapshot name, such as "postgres:app"

	LastSuccess  time.Time // of the last good snapshot; zero if never
	LastDuration float64   // seconds the last good snapshot took
	BytesRead    int64     // bytes read from the source by the last good snapshot
	BytesAdded   int64     // bytes it added to the repository
	// DedupRatio is BytesRead / max(BytesAdded, 1) of the last good
	// snapshot (see Ratio). When zero and BytesRead is not, Write computes it.
	DedupRatio float64

	Suspicious    bool      // the newest snapshot is marked suspicious
	LastCheckOK   *bool     // result of the last check; nil: never checked
	LastCheckTime time.Time // when the last check ran
}

// Repository is the state of one repository.
type Repository struct {
	Location  string // the repository's location, the label value
	SizeBytes int64  // stored bytes
	Snapshots int    // number of snapshots
}

// Snapshot is everything Write renders, gathered at one time.
type Snapshot struct {
	Sources      []Source
	Repositories []Repository
	Generated    time.Time // when it was gathered; zero: the time of Write
}

// Ratio returns the deduplication ratio read / max(added, 1): how many
// bytes were read for every byte stored.
func Ratio(read, added int64) float64 {
	return float64(read) / float64(max(added, 1))
}

// sample is one line of output: label pairs and a value.
type sample struct {
	labels []string // name, value, name, value, ...
	value  string
}

// family is one metric with its samples.
type family struct {
	name, help string
	samples    []sample
}

// Write renders s in the Prometheus text format: HELP and TYPE lines, then
// the samples of each metric, sorted deterministically. It returns an error
// without writing anything for a duplicate series, and otherwise the first
// write error.
func Write(w io.Writer, s Snapshot) error {
	fams, err := families(s)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		if len(f.samples) == 0 {
			continue
		}
		fmt.Fprintf(bw, "# HELP %s %s\n", f.name, escapeHelp(f.help))
		fmt.Fprintf(bw, "# TYPE %s gauge\n", f.name)
		for _, smp := range f.samples {
			bw.WriteString(f.name)
			if len(smp.labels) > 0 {
				bw.WriteByte('{')
				for i := 0; i < len(smp.labels); i += 2 {
					if i > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, "%s=\"%s\"", smp.labels[i], escapeLabel(smp.labels[i+1]))
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(smp.value)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// families builds the metric families of s in output order.
func families(s Snapshot) ([]family, error) {
	sources := slices.Clone(s.Sources)
	slices.SortStableFunc(sources, func(a, b Source) int {
		return cmp.Or(strings.Compare(a.Job, b.Job), strings.Compare(a.Source, b.Source))
	})
	for i := 1; i < len(sources); i++ {
		if sources[i].Job == sources[i-1].Job && sources[i].Source == sources[i-1].Source {
			return nil, fmt.Errorf("metrics: duplicate source %q of job %q", sources[i].Source, sources[i].Job)
		}
	}
	repos := slices.Clone(s.Repositories)
	for i := range repos {
		repos[i].Location = maskPassword(repos[i].Location)
	}
	slices.SortStableFunc(repos, func(a, b Repository) int { return strings.Compare(a.Location, b.Location) })
	for i := 1; i < len(repos); i++ {
		if repos[i].Location == repos[i-1].Location {
			return nil, fmt.Errorf("metrics: duplicate repository %q", repos[i].Location)
		}
	}

	var (
		lastSuccess = family{name: "bk_last_success_timestamp_seconds", help: "Unix time of the last good snapshot of the source; 0 if never."}
		duration    = family{name: "bk_last_duration_seconds", help: "Seconds the last good snapshot of the source took."}
		read        = family{name: "bk_last_bytes_read", help: "Bytes read from the source by its last good snapshot."}
		added       = family{name: "bk_last_bytes_added", help: "Bytes the last good snapshot of the source added to the repository."}
		dedup       = family{name: "bk_dedup_ratio", help: "Bytes read per byte added, of the last good snapshot of the source."}
		suspicious  = family{name: "bk_suspicious", help: "1 if the newest snapshot of the source is marked suspicious, else 0."}
		checkOK     = family{name: "bk_last_check_success", help: "1 if the last check of the source passed, 0 if it failed."}
		checkTime   = family{name: "bk_last_check_timestamp_seconds", help: "Unix time of the last check of the source."}
		repoSize    = family{name: "bk_repository_size_bytes", help: "Bytes stored in the repository."}
		repoSnaps   = family{name: "bk_repository_snapshots", help: "Number of snapshots in the repository."}
		generated   = family{name: "bk_metrics_generated_timestamp_seconds", help: "Unix time these metrics were gathered."}
	)
	for _, src := range sources {
		l := []string{"job", src.Job, "source", src.Source}
		add := func(f *family, v string) { f.samples = append(f.samples, sample{l, v}) }
		add(&lastSuccess, timestamp(src.LastSuccess))
		if !src.LastSuccess.IsZero() {
			add(&duration, float(src.LastDuration))
			add(&read, strconv.FormatInt(src.BytesRead, 10))
			add(&added, strconv.FormatInt(src.BytesAdded, 10))
			ratio := src.DedupRatio
			if ratio == 0 && src.BytesRead != 0 {
				ratio = Ratio(src.BytesRead, src.BytesAdded)
			}
			add(&dedup, float(ratio))
		}
		add(&suspicious, boolean(src.Suspicious))
		if src.LastCheckOK != nil {
			add(&checkOK, boolean(*src.LastCheckOK))
		}
		if !src.LastCheckTime.IsZero() {
			add(&checkTime, timestamp(src.LastCheckTime))
		}
	}
	for _, r := range repos {
		l := []string{"repository", r.Location}
		repoSize.samples = append(repoSize.samples, sample{l, strconv.FormatInt(r.SizeBytes, 10)})
		repoSnaps.samples = append(repoSnaps.samples, sample{l, strconv.Itoa(r.Snapshots)})
	}
	gen := s.Generated
	if gen.IsZero() {
		gen = time.Now()
	}
	generated.samples = []sample{{nil, timestamp(gen)}}
	return []family{lastSuccess, duration, read, added, dedup, suspicious, checkOK, checkTime, repoSize, repoSnaps, generated}, nil
}

// WriteFile writes s to path atomically, for the textfile collector: a
// temporary file in the same folder (named ".NAME.tmp-*", which the
// collector ignores as it reads only *.prom), fsync, mode 0644, rename over
// path, fsync of the folder. A reader sees the old file or the new one,
// never a part. Errors name path; no temporary file is left behind.
func WriteFile(path string, s Snapshot) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write metrics %s: %w", path, err)
		}
	}()
	if err := Write(f, s); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a folder so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Handler serves Write's output of the Snapshot gather returns, for an HTTP
// /metrics endpoint. gather is called once per request, from the request's
// goroutine; its error becomes a 500 answer.
func Handler(gather func() (Snapshot, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := gather()
		if err != nil {
			http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		var b strings.Builder
		if err := Write(&b, s); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		_, _ = io.WriteString(w, b.String())
	})
}

// maskPassword masks the password of a URL location, as url.URL.Redacted
// does; anything else is returned unchanged.
func maskPassword(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.User == nil {
		return loc
	}
	if _, ok := u.User.Password(); !ok {
		return loc
	}
	return u.Redacted()
}

// timestamp renders t as Unix seconds; the zero time is 0.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return float(float64(t.UnixNano()) / 1e9)
}

// boolean renders b as 1 or 0.
func boolean(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// float renders v as the text format wants it: plain decimals for the usual
// range, an exponent for the very large or small, and NaN, +Inf, -Inf.
func float(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e-4 && math.Abs(v) < 1e21:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// escapeLabel escapes a label value: backslash, double quote and newline,
// after replacing invalid UTF-8.
func escapeLabel(v string) string {
	return labelEscaper.Replace(strings.ToValidUTF8(v, "\uFFFD"))
}

// escapeHelp escapes HELP text: backslash and newline.
func escapeHelp(v string) string {
	return helpEscaper.Replace(strings.ToValidUTF8(v, "\uFFFD"))
}
