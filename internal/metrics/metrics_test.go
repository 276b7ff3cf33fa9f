package metrics

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func ptr[T any](v T) *T { return &v }

// testSnapshot is a small Snapshot that exercises every metric, given out
// of order to check the sorting.
func testSnapshot() Snapshot {
	t0 := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	return Snapshot{
		Sources: []Source{
			{
				Job: "nightly", Source: "postgres:app",
				LastSuccess: t0.Add(72 * time.Second), LastDuration: 71.5,
				BytesRead: 1288490188, BytesAdded: 50331648, DedupRatio: Ratio(1288490188, 50331648),
				LastCheckOK: ptr(true), LastCheckTime: t0.Add(-time.Hour),
			},
			{
				Job: "hourly", Source: "redis:cache",
				LastSuccess: t0.Add(500 * time.Millisecond), LastDuration: 0.25,
				BytesRead: 4096, BytesAdded: 0, // ratio left for Write to compute
				Suspicious:  true,
				LastCheckOK: ptr(false), LastCheckTime: t0.Add(-30 * time.Minute),
			},
			{Job: "nightly", Source: "mysql:shop"}, // never succeeded, never checked
		},
		Repositories: []Repository{
			{Location: "s3://minio.local/bk", SizeBytes: 987654321, Snapshots: 42},
			{Location: "/srv/backup/repo", SizeBytes: 12345, Snapshots: 3},
		},
		Generated: t0.Add(2 * time.Minute),
	}
}

func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, testSnapshot()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "basic.prom")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
	checkFormat(t, buf.String())

	// Input order does not matter.
	s := testSnapshot()
	s.Sources[0], s.Sources[2] = s.Sources[2], s.Sources[0]
	s.Repositories[0], s.Repositories[1] = s.Repositories[1], s.Repositories[0]
	var again bytes.Buffer
	if err := Write(&again, s); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Error("output depends on input order")
	}
}

// parsedSample is one sample line, parsed back.
type parsedSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseLine parses a sample line `name{label="value",...} value`, undoing
// the escapes of label values.
func parseLine(line string) (parsedSample, error) {
	var s parsedSample
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:end], line[end:]
	if !metricName.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	s.labels = map[string]string{}
	if line[0] == '{' {
		line = line[1:]
		for line != "" && line[0] != '}' {
			eq := strings.IndexByte(line, '=')
			if eq < 0 || eq+1 >= len(line) || line[eq+1] != '"' {
				return s, fmt.Errorf("bad label at %q", line)
			}
			name := line[:eq]
			if !labelName.MatchString(name) {
				return s, fmt.Errorf("bad label name %q", name)
			}
			line = line[eq+2:]
			var v strings.Builder
			for {
				if line == "" {
					return s, errors.New("unterminated label value")
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\n' {
					return s, errors.New("raw newline in label value")
				}
				if c == '\\' {
					if line == "" {
						return s, errors.New("dangling backslash")
					}
					switch line[0] {
					case '\\':
						v.WriteByte('\\')
					case '"':
						v.WriteByte('"')
					case 'n':
						v.WriteByte('\n')
					default:
						return s, fmt.Errorf("bad escape \\%c", line[0])
					}
					line = line[1:]
					continue
				}
				v.WriteByte(c)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %q twice", name)
			}
			s.labels[name] = v.String()
			line = strings.TrimPrefix(line, ",")
		}
		if line == "" {
			return s, errors.New("unterminated label set")
		}
		line = line[1:]
	}
	if !strings.HasPrefix(line, " ") || strings.Count(line, " ") != 1 {
		return s, fmt.Errorf("want one space and a value, got %q", line)
	}
	v, err := strconv.ParseFloat(line[1:], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// checkFormat checks every line of out: comments are HELP or TYPE gauge of
// a bk_ metric, each sample follows its metric's TYPE line, no series
// repeats and the output ends with a newline. It returns the samples.
func checkFormat(tb testing.TB, out string) []parsedSample {
	tb.Helper()
	if !strings.HasSuffix(out, "\n") {
		tb.Error("output does not end with a newline")
	}
	var samples []parsedSample
	typed := map[string]bool{}
	seen := map[string]bool{}
	current := ""
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(rest, " ")
			if !strings.HasPrefix(name, "bk_") {
				tb.Errorf("line %d: HELP of %q", i+1, name)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if typ != "gauge" || typed[name] {
				tb.Errorf("line %d: %q", i+1, line)
			}
			typed[name], current = true, name
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			tb.Errorf("line %d %q: %v", i+1, line, err)
			continue
		}
		if s.name != current {
			tb.Errorf("line %d: sample of %s under TYPE of %s", i+1, s.name, current)
		}
		if key := fmt.Sprint(s.name, s.labels); seen[key] {
			tb.Errorf("line %d: duplicate series %s", i+1, key)
		} else {
			seen[key] = true
		}
		samples = append(samples, s)
	}
	return samples
}

func TestLabelEscaping(t *testing.T) {
	hostile := []string{
		`say "hi"`,
		`C:\backup\repo`,
		"two\nlines",
		`\"` + "\n" + `\n`,
		"bad utf8 \xff end",
		"",
	}
	s := Snapshot{Generated: time.Unix(1, 0)}
	for i, v := range hostile {
		s.Sources = append(s.Sources, Source{Job: v, Source: fmt.Sprint("src", i)})
		s.Repositories = append(s.Repositories, Repository{Location: v + fmt.Sprint(i)})
	}
	var buf bytes.Buffer
	if err := Write(&buf, s); err != nil {
		t.Fatal(err)
	}
	samples := checkFormat(t, buf.String())
	jobs := map[string]bool{}
	repos := map[string]bool{}
	for _, smp := range samples {
		if smp.name == "bk_suspicious" {
			jobs[smp.labels["job"]] = true
		}
		if smp.name == "bk_repository_snapshots" {
			repos[smp.labels["repository"]] = true
		}
	}
	for i, v := range hostile {
		want := strings.ToValidUTF8(v, "\uFFFD")
		if !jobs[want] || !repos[want+fmt.Sprint(i)] {
			t.Errorf("label value %q did not survive a round trip: %v %v", v, jobs, repos)
		}
	}
	if !strings.Contains(buf.String(), `job="say \"hi\""`) || !strings.Contains(buf.String(), `job="C:\\backup\\repo"`) ||
		!strings.Contains(buf.String(), `job="two\nlines"`) {
		t.Errorf("escapes not as the format says:\n%s", buf.String())
	}
}

func TestDuplicateSeries(t *testing.T) {
	for _, s := range []Snapshot{
		{Sources: []Source{{Job: "j", Source: "s"}, {Job: "k", Source: "s"}, {Job: "j", Source: "s"}}},
		{Repositories: []Repository{{Location: "/r"}, {Location: "/r"}}},
		// Masking the password makes these two the same label value.
		{Repositories: []Repository{{Location: "s3://u:a@h/b"}, {Location: "s3://u:b@h/b"}}},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, s); err == nil || buf.Len() != 0 {
			t.Errorf("%+v: err %v, wrote %d bytes", s, err, buf.Len())
		}
	}
}

func TestPasswordMasked(t *testing.T) {
	s := Snapshot{Repositories: []Repository{{Location: "s3://key:topsecret@minio:9000/bk"}}}
	var buf bytes.Buffer
	if err := Write(&buf, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "topsecret") || !strings.Contains(buf.String(), `repository="s3://key:xxxxx@minio:9000/bk"`) {
		t.Errorf("got:\n%s", buf.String())
	}
}

func TestFloat(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1: "1", 25.6: "25.6", 1740794400.5: "1740794400.5", 1e-7: "1e-07", 1e22: "1e+22", -3: "-3",
	} {
		if got := float(v); got != want {
			t.Errorf("float(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(100, 0); got != 100 {
		t.Errorf("Ratio(100, 0) = %v", got)
	}
	if got := Ratio(100, 25); got != 4 {
		t.Errorf("Ratio(100, 25) = %v", got)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bk.prom")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, testSnapshot()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	_ = Write(&want, testSnapshot())
	if string(got) != want.String() {
		t.Errorf("file holds:\n%s", got)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o644 {
		t.Errorf("mode %o, want 644", mode)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %v, want only bk.prom", entries)
	}
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such", "bk.prom")
	if err := WriteFile(missing, testSnapshot()); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing folder: %v", err)
	}

	// A failed Write (duplicate series) leaves no temporary file.
	bad := Snapshot{Repositories: []Repository{{Location: "/r"}, {Location: "/r"}}}
	path := filepath.Join(dir, "bk.prom")
	if err := WriteFile(path, bad); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("duplicate series: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}

	// A parent that is a file, and a path that is a folder: both fail,
	// even for root, and leave nothing behind.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(file, "bk.prom"), t.TempDir()} {
		if err := WriteFile(p, testSnapshot()); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("folder permissions do not stop this user")
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(ro, "bk.prom")
	if err := WriteFile(path, testSnapshot()); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("read-only folder: %v", err)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(func() (Snapshot, error) { return testSnapshot(), nil }))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Errorf("%s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	checkFormat(t, body.String())

	failing := httptest.NewServer(Handler(func() (Snapshot, error) { return Snapshot{}, errors.New("no repo") }))
	defer failing.Close()
	resp, err = http.Get(failing.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("failing gather: %s", resp.Status)
	}
}
