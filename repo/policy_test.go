package repo_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
)

// polSnap describes a snapshot of a policy test: "2026-12-31 23:00" in UTC,
// with optional host, name, tags and status.
type polSnap struct {
	at     string
	tags   []string
	status string
	host   string
	name   string
}

func (p polSnap) snapshot(t *testing.T, i int) *repo.Snapshot {
	t.Helper()
	tm, err := time.Parse("2006-01-02 15:04", p.at)
	if err != nil {
		t.Fatalf("bad time %q: %v", p.at, err)
	}
	s := &repo.Snapshot{Time: tm, Host: polOr(p.host, "db1"), Name: polOr(p.name, "app"), Tags: p.tags, Status: p.status}
	s.ID[0], s.ID[1] = byte(i>>8), byte(i)
	return s
}

func polOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// polRun applies p to snaps and returns, in the order of snaps, "keep RULES"
// or "remove REASON" for each.
func polRun(t *testing.T, snaps []polSnap, p repo.Policy) ([]string, []repo.GroupPlan, error) {
	t.Helper()
	var list []*repo.Snapshot
	for i, s := range snaps {
		list = append(list, s.snapshot(t, i))
	}
	if p.Location == nil {
		p.Location = time.UTC
	}
	plans, err := repo.PlanForget(list, p)
	got := make([]string, len(list))
	for _, g := range plans {
		for _, d := range g.Decisions {
			i := slices.Index(list, d.Snapshot)
			verb := "remove"
			if d.Keep {
				verb = "keep"
			}
			got[i] = verb + " " + strings.Join(d.Rules, ",")
		}
	}
	return got, plans, err
}

// TestPlanForget pins the policy semantics that README "Retention"
// documents, with the examples there.
func TestPlanForget(t *testing.T) {
	tests := []struct {
		name   string
		policy repo.Policy
		snaps  []polSnap
		want   []string // per snapshot, in the order of snaps
	}{
		{
			name:   "keep-last",
			policy: repo.Policy{Last: 2},
			snaps:  []polSnap{{at: "2026-11-01 01:00"}, {at: "2026-11-02 01:00"}, {at: "2026-11-03 01:00"}},
			want:   []string{"remove no rule", "keep last", "keep last"},
		},
		{
			name:   "daily across a month boundary, newest of each day",
			policy: repo.Policy{Daily: 3},
			snaps: []polSnap{
				{at: "2026-01-30 13:00"}, {at: "2026-01-31 01:00"}, {at: "2026-01-31 13:00"},
				{at: "2026-02-01 01:00"}, {at: "2026-02-01 13:00"}, {at: "2026-02-02 01:00"},
			},
			want: []string{"remove no rule", "remove no rule", "keep daily", "remove no rule", "keep daily", "keep daily"},
		},
		{
			name:   "hourly",
			policy: repo.Policy{Hourly: 2},
			snaps:  []polSnap{{at: "2026-11-01 01:10"}, {at: "2026-11-01 01:50"}, {at: "2026-11-01 02:05"}, {at: "2026-11-01 02:55"}},
			want:   []string{"remove no rule", "keep hourly", "remove no rule", "keep hourly"},
		},
		{
			// ISO week 53 of 2026 runs from Monday 28 December to Sunday 3 January 2027.
			name:   "weekly across a year boundary uses ISO weeks",
			policy: repo.Policy{Weekly: 2},
			snaps:  []polSnap{{at: "2026-12-21 01:00"}, {at: "2026-12-30 01:00"}, {at: "2027-01-02 01:00"}, {at: "2027-01-05 01:00"}},
			want:   []string{"remove no rule", "remove no rule", "keep weekly", "keep weekly"},
		},
		{
			name:   "monthly and yearly across a year boundary",
			policy: repo.Policy{Monthly: 3, Yearly: 2},
			snaps:  []polSnap{{at: "2025-06-01 01:00"}, {at: "2026-11-15 01:00"}, {at: "2026-12-01 01:00"}, {at: "2026-12-31 23:00"}, {at: "2027-01-01 00:30"}},
			want:   []string{"remove no rule", "keep monthly", "remove no rule", "keep monthly,yearly", "keep monthly,yearly"},
		},
		{
			name:   "yearly without limit",
			policy: repo.Policy{Yearly: -1},
			snaps:  []polSnap{{at: "2020-03-01 01:00"}, {at: "2021-03-01 01:00"}, {at: "2021-09-01 01:00"}, {at: "2026-03-01 01:00"}},
			want:   []string{"keep yearly", "remove no rule", "keep yearly", "keep yearly"},
		},
		{
			name:   "rules combine and each is recorded",
			policy: repo.Policy{Last: 1, Daily: 2, Weekly: 1},
			snaps:  []polSnap{{at: "2026-11-20 01:00"}, {at: "2026-11-21 01:00"}, {at: "2026-11-22 01:00"}},
			want:   []string{"remove no rule", "keep daily", "keep last,daily,weekly"},
		},
		{
			name:   "keep-within counts back from the newest snapshot, inclusive",
			policy: repo.Policy{Within: repo.Duration{Days: 7}},
			snaps:  []polSnap{{at: "2026-11-14 00:59"}, {at: "2026-11-15 01:00"}, {at: "2026-11-19 01:00"}, {at: "2026-11-22 01:00"}},
			want:   []string{"remove no rule", "keep within 7d", "keep within 7d", "keep within 7d"},
		},
		{
			name:   "keep-within in months is calendar arithmetic",
			policy: repo.Policy{Within: repo.Duration{Years: 1, Months: 2}},
			snaps:  []polSnap{{at: "2025-09-29 23:00"}, {at: "2025-09-30 00:00"}, {at: "2026-11-30 00:00"}},
			want:   []string{"remove no rule", "keep within 1y2m", "keep within 1y2m"},
		},
		{
			name:   "keep-tag",
			policy: repo.Policy{Last: 1, Tags: []string{"release", "audit"}},
			snaps:  []polSnap{{at: "2026-01-01 01:00", tags: []string{"release"}}, {at: "2026-02-01 01:00", tags: []string{"nightly"}}, {at: "2026-03-01 01:00", tags: []string{"audit", "release"}}, {at: "2026-04-01 01:00"}},
			want:   []string{"keep tag release", "remove no rule", "keep tag release,tag audit", "keep last"},
		},
		{
			name:   "a suspicious snapshot fills no bucket",
			policy: repo.Policy{Daily: 2},
			snaps:  []polSnap{{at: "2026-11-20 01:00"}, {at: "2026-11-21 01:00"}, {at: "2026-11-22 01:00"}, {at: "2026-11-22 02:00", status: repo.StatusSuspicious}},
			want:   []string{"remove no rule", "keep daily", "keep daily", "remove status suspicious"},
		},
		{
			name:   "broken snapshots fill no last bucket",
			policy: repo.Policy{Last: 2},
			snaps:  []polSnap{{at: "2026-11-20 01:00"}, {at: "2026-11-21 01:00", status: repo.StatusBroken}, {at: "2026-11-22 01:00"}, {at: "2026-11-23 01:00", status: repo.StatusBroken}},
			want:   []string{"keep last", "remove status broken", "keep last", "remove status broken"},
		},
		{
			name:   "within and tags keep a suspicious snapshot but never a broken one",
			policy: repo.Policy{Within: repo.Duration{Days: 2}, Tags: []string{"keep"}},
			snaps:  []polSnap{{at: "2026-11-01 01:00", tags: []string{"keep"}, status: repo.StatusBroken}, {at: "2026-11-02 01:00", tags: []string{"keep"}, status: repo.StatusSuspicious}, {at: "2026-11-21 01:00"}, {at: "2026-11-22 01:00", status: repo.StatusBroken}, {at: "2026-11-22 02:00", status: repo.StatusSuspicious}},
			want:   []string{"remove status broken", "keep tag keep", "keep within 2d", "remove status broken", "keep within 2d"},
		},
		{
			name:   "the newest good snapshot is never removed",
			policy: repo.Policy{Tags: []string{"release"}},
			snaps:  []polSnap{{at: "2026-11-20 01:00", tags: []string{"release"}}, {at: "2026-11-21 01:00"}, {at: "2026-11-22 01:00"}, {at: "2026-11-23 01:00", status: repo.StatusSuspicious}},
			want:   []string{"keep tag release", "remove no rule", "keep newest good", "remove status suspicious"},
		},
		{
			name:   "groups are host and name by default",
			policy: repo.Policy{Last: 1},
			snaps:  []polSnap{{at: "2026-11-20 01:00"}, {at: "2026-11-21 01:00"}, {at: "2026-11-20 01:00", host: "db2"}, {at: "2026-11-21 01:00", name: "crm"}, {at: "2026-11-22 01:00", name: "crm"}},
			want:   []string{"remove no rule", "keep last", "keep last", "remove no rule", "keep last"},
		},
		{
			name:   "group by tags",
			policy: repo.Policy{Last: 1, GroupBy: &repo.GroupBy{Tags: true}},
			snaps:  []polSnap{{at: "2026-11-20 01:00", tags: []string{"a", "b"}}, {at: "2026-11-21 01:00", tags: []string{"b", "a"}, host: "db2"}, {at: "2026-11-22 01:00"}},
			want:   []string{"remove no rule", "keep last", "keep last"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := polRun(t, tc.snaps, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestPlanForgetLocation: calendar buckets are days of the policy's time
// zone, not of UTC.
func TestPlanForgetLocation(t *testing.T) {
	snaps := []polSnap{{at: "2026-11-21 23:30"}, {at: "2026-11-22 00:30"}}
	for _, tc := range []struct {
		loc  *time.Location
		want []string
	}{
		{time.UTC, []string{"keep daily", "keep daily"}},
		{time.FixedZone("UTC+2", 2*3600), []string{"remove no rule", "keep daily"}},
	} {
		got, _, err := polRun(t, snaps, repo.Policy{Daily: 5, Location: tc.loc})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.loc, got, tc.want)
		}
	}
}

// TestPlanForgetRefusesRemoveAll: a group whose snapshots are all bad would
// lose everything; the policy is refused and the plans say why.
func TestPlanForgetRefusesRemoveAll(t *testing.T) {
	snaps := []polSnap{
		{at: "2026-11-20 01:00", name: "good"},
		{at: "2026-11-21 01:00", name: "bad", status: repo.StatusBroken},
		{at: "2026-11-22 01:00", name: "bad", status: repo.StatusSuspicious},
	}
	got, plans, err := polRun(t, snaps, repo.Policy{Last: 3})
	if !errors.Is(err, repo.ErrForgetAll) || !strings.Contains(err.Error(), "name bad") {
		t.Fatalf("got %v, want ErrForgetAll naming the group", err)
	}
	if len(plans) != 2 || !slices.Equal(got, []string{"keep last", "remove status broken", "remove status suspicious"}) {
		t.Fatalf("plans %d, decisions %q", len(plans), got)
	}
	// Within keeps the suspicious one, so the group is not emptied.
	if _, _, err := polRun(t, snaps, repo.Policy{Last: 3, Within: repo.Duration{Days: 1}}); err != nil {
		t.Fatalf("with keep-within: %v", err)
	}
}

func TestPlanForgetRejects(t *testing.T) {
	s := []*repo.Snapshot{{ID: crypt.ID{1}, Time: time.Now()}}
	if _, err := repo.PlanForget(s, repo.Policy{}); err == nil {
		t.Error("an empty policy must be refused")
	}
	if _, err := repo.PlanForget(s, repo.Policy{Daily: -2}); err == nil {
		t.Error("a count below -1 must be refused")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]repo.Duration{
		"7d":          {Days: 7},
		"2w":          {Days: 14},
		"36h":         {Hours: 36},
		"1y2m":        {Years: 1, Months: 2},
		"1y6m2w3d12h": {Years: 1, Months: 6, Days: 17, Hours: 12},
	} {
		got, err := repo.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := repo.ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q does not parse back", in, got.String())
		}
	}
	for _, in := range []string{"", "7", "d", "7x", "1y2", "-1d", "1.5d", "99999999999d"} {
		if _, err := repo.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	for in, want := range map[string]repo.GroupBy{
		"host,name":      repo.DefaultGroupBy,
		"host,name,tags": {Host: true, Name: true, Tags: true},
		"tags":           {Tags: true},
		"":               {},
	} {
		if got, err := repo.ParseGroupBy(in); err != nil || got != want {
			t.Errorf("ParseGroupBy(%q) = %+v, %v", in, got, err)
		}
	}
	if _, err := repo.ParseGroupBy("host,time"); err == nil {
		t.Error(`ParseGroupBy("host,time") succeeded`)
	}
}
