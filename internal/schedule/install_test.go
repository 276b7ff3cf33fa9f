package schedule

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readDir returns the file names in dir, sorted.
func readDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// writeFile writes a file for a test.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInstallRemoveRoundTrip(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "other.service"), "[Service]\n")
	writeFile(t, filepath.Join(dir, "bk-mine.timer"), "# hand-written\n[Timer]\n")
	units, err := Units(twoJobs, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	names, err := Install(dir, units)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(units) {
		t.Fatalf("Install wrote %q; want %d units", names, len(units))
	}
	for _, u := range units {
		path := filepath.Join(dir, u.Name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != u.Content {
			t.Errorf("%s differs from the generated unit", u.Name)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v; want 0644", u.Name, fi.Mode().Perm())
		}
	}
	// A second install replaces the files and leaves no temporary ones.
	if _, err := Install(dir, units); err != nil {
		t.Fatal(err)
	}
	if got := len(readDir(t, dir)); got != len(units)+2 {
		t.Fatalf("after reinstall %d files: %q", got, readDir(t, dir))
	}

	// Clearing app's prune and check schedules makes their units stale.
	jobs := slices.Clone(twoJobs)
	jobs[0].PruneSchedule, jobs[0].CheckSchedule = "", ""
	keep, err := Units(jobs, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	stale, err := PlanStale(dir, keep)
	if err != nil {
		t.Fatal(err)
	}
	wantStale := []string{"bk-app-check.service", "bk-app-check.timer", "bk-app-prune.service", "bk-app-prune.timer"}
	if !slices.Equal(stale, wantStale) {
		t.Fatalf("PlanStale = %q; want %q", stale, wantStale)
	}
	if got := DisableCommands(stale); len(got) != 1 || !slices.Equal(got[0], []string{"systemctl", "disable", "--now", "bk-app-check.timer", "bk-app-prune.timer"}) {
		t.Errorf("DisableCommands = %q", got)
	}
	removed, err := RemoveStale(dir, keep)
	if err != nil || !slices.Equal(removed, wantStale) {
		t.Fatalf("RemoveStale = %q, %v; want %q", removed, err, wantStale)
	}

	// Removing both jobs leaves only the files bk did not write.
	plan, err := PlanRemove(dir, twoJobs)
	if err != nil {
		t.Fatal(err)
	}
	wantPlan := []string{"bk-app.service", "bk-app.timer", "bk-db_main.service", "bk-db_main.timer"}
	if !slices.Equal(plan, wantPlan) {
		t.Fatalf("PlanRemove = %q; want %q", plan, wantPlan)
	}
	removed, err = Remove(dir, twoJobs)
	if err != nil || !slices.Equal(removed, wantPlan) {
		t.Fatalf("Remove = %q, %v; want %q", removed, err, wantPlan)
	}
	if got, want := readDir(t, dir), []string{"bk-mine.timer", "other.service"}; !slices.Equal(got, want) {
		t.Fatalf("left %q; want %q", got, want)
	}
	// Removing again is a no-op.
	if removed, err := Remove(dir, twoJobs); err != nil || len(removed) != 0 {
		t.Fatalf("second Remove = %q, %v", removed, err)
	}
}

func TestInstallRefusesForeignUnit(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "bk-app.timer")
	writeFile(t, foreign, "[Timer]\nOnCalendar=hourly\n")
	units, err := Units(twoJobs, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Install(dir, units); !errors.Is(err, ErrNotGenerated) {
		t.Fatalf("Install over a foreign unit = %v; want ErrNotGenerated", err)
	}
	if got := readDir(t, dir); !slices.Equal(got, []string{"bk-app.timer"}) {
		t.Fatalf("Install wrote %q despite refusing", got)
	}
	if _, err := Remove(dir, twoJobs); !errors.Is(err, ErrNotGenerated) {
		t.Fatalf("Remove of a foreign unit = %v; want ErrNotGenerated", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("foreign unit gone: %v", err)
	}
	if stale, err := PlanStale(dir, nil); err != nil || len(stale) != 0 {
		t.Fatalf("PlanStale = %q, %v; want nothing", stale, err)
	}
}

func TestInstallBadName(t *testing.T) {
	for _, name := range []string{"../bk-x.service", "x.service", "bk-x.conf"} {
		if _, err := Install(t.TempDir(), []Unit{{Name: name, Content: Marker + "\n"}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Install(%q) = %v; want ErrInvalid", name, err)
		}
	}
}

func TestEnableCommands(t *testing.T) {
	units, err := Units(twoJobs, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	got := EnableCommands(units)
	want := [][]string{
		{"systemctl", "daemon-reload"},
		{"systemctl", "enable", "--now", "bk-app-check.timer", "bk-app-prune.timer", "bk-app.timer", "bk-db_main.timer"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("EnableCommands = %q; want %q", got, want)
	}
	if got := EnableCommands(nil); len(got) != 1 {
		t.Errorf("EnableCommands(nil) = %q; want only daemon-reload", got)
	}
	if got := DisableCommands([]string{"bk-a.service"}); got != nil {
		t.Errorf("DisableCommands without timers = %q", got)
	}
}

func TestJobUnitNames(t *testing.T) {
	got := JobUnitNames([]Job{{Name: "a"}})
	want := []string{"bk-a-check.service", "bk-a-check.timer", "bk-a-prune.service", "bk-a-prune.timer", "bk-a.service", "bk-a.timer"}
	if !slices.Equal(got, want) {
		t.Errorf("JobUnitNames = %q; want %q", got, want)
	}
}
