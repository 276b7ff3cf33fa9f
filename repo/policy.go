package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store"
)

// ErrForgetAll means a retention policy would remove every snapshot of a
// group; forget refuses such a policy.
var ErrForgetAll = errors.New("the policy would remove every snapshot of a group")

// Policy says which snapshots forget keeps. Within each group (GroupBy) the
// snapshots are taken newest first and each rule keeps some of them; a
// snapshot that no rule keeps is removed. The counting rules follow restic
// and borg:
//
//   - Last keeps the N newest snapshots.
//   - Hourly, Daily, Weekly, Monthly and Yearly keep the newest snapshot of
//     each of the N newest hours, days, ISO weeks, months and years that
//     have snapshots (calendar buckets in Location).
//
// A negative count means no limit. Within keeps every snapshot taken at most
// Within before the group's newest snapshot, and Tags every snapshot that
// carries one of the tags.
//
// A snapshot whose Status is not empty never fills a counting rule's
// bucket: the bucket stays open for a good snapshot. Within and Tags keep a
// suspicious snapshot but never a broken one, whose data is gone. Whatever
// the rules, the newest good snapshot of each group is kept.
type Policy struct {
	Last    int
	Hourly  int
	Daily   int
	Weekly  int
	Monthly int
	Yearly  int
	Within  Duration
	Tags    []string
	// GroupBy selects the fields that form a group; nil means DefaultGroupBy.
	GroupBy *GroupBy
	// Location is the time zone of the calendar buckets; nil means time.Local.
	Location *time.Location
}

// Empty reports whether the policy has no rule at all.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 &&
		p.Yearly == 0 && p.Within.IsZero() && len(p.Tags) == 0
}

// GroupBy says which snapshot fields make up a group. With none set, all
// snapshots form one group.
type GroupBy struct {
	Host, Name, Tags bool
}

// DefaultGroupBy groups snapshots by host and source name.
var DefaultGroupBy = GroupBy{Host: true, Name: true}

// ParseGroupBy parses a comma-separated list of "host", "name" and "tags";
// the empty string means one group for all snapshots.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for f := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(f) {
		case "host":
			g.Host = true
		case "name":
			g.Name = true
		case "tags", "tag":
			g.Tags = true
		case "":
		default:
			return g, fmt.Errorf("group by %q: want a list of host, name and tags", f)
		}
	}
	return g, nil
}

func (g GroupBy) String() string {
	var f []string
	if g.Host {
		f = append(f, "host")
	}
	if g.Name {
		f = append(f, "name")
	}
	if g.Tags {
		f = append(f, "tags")
	}
	return strings.Join(f, ",")
}

// Duration is a calendar duration for Policy.Within: years, months, days
// and hours, subtracted in that order with time.AddDate and time.Add.
type Duration struct {
	Years, Months, Days, Hours int
}

// ParseDuration parses durations like "7d", "2w", "36h", "1y2m" and
// "1y6m2w3d12h": numbers followed by y (years), m (months), w (weeks), d
// (days) or h (hours).
func ParseDuration(s string) (Duration, error) {
	var d Duration
	rest := s
	if rest == "" {
		return d, errors.New("empty duration")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return Duration{}, fmt.Errorf("duration %q: want numbers with units y, m, w, d or h, like 7d or 1y2m", s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 1<<20 {
			return Duration{}, fmt.Errorf("duration %q: %s is out of range", s, rest[:i])
		}
		switch rest[i] {
		case 'y':
			d.Years += n
		case 'm':
			d.Months += n
		case 'w':
			d.Days += 7 * n
		case 'd':
			d.Days += n
		case 'h':
			d.Hours += n
		default:
			return Duration{}, fmt.Errorf("duration %q: unknown unit %q (want y, m, w, d or h)", s, rest[i])
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// IsZero reports whether d is empty.
func (d Duration) IsZero() bool { return d == Duration{} }

// String renders d in the form ParseDuration reads ("1y2m3d4h").
func (d Duration) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n    int
		unit byte
	}{{d.Years, 'y'}, {d.Months, 'm'}, {d.Days, 'd'}, {d.Hours, 'h'}} {
		if p.n != 0 {
			b.WriteString(strconv.Itoa(p.n))
			b.WriteByte(p.unit)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// before returns t minus d.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

// GroupKey identifies one group of snapshots; fields not grouped by are empty.
type GroupKey struct {
	Host string   `json:"host,omitempty"`
	Name string   `json:"name,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

func (k GroupKey) String() string {
	var f []string
	if k.Host != "" {
		f = append(f, "host "+k.Host)
	}
	if k.Name != "" {
		f = append(f, "name "+k.Name)
	}
	if len(k.Tags) > 0 {
		f = append(f, "tags "+strings.Join(k.Tags, ","))
	}
	if len(f) == 0 {
		return "all snapshots"
	}
	return strings.Join(f, ", ")
}

// Rules recorded in a Decision.
const (
	RuleLast       = "last"
	RuleHourly     = "hourly"
	RuleDaily      = "daily"
	RuleWeekly     = "weekly"
	RuleMonthly    = "monthly"
	RuleYearly     = "yearly"
	RuleWithin     = "within"      // recorded as "within 7d"
	RuleTag        = "tag"         // recorded as "tag nightly"
	RuleNewestGood = "newest good" // the group's newest good snapshot, which no policy removes
	RuleNone       = "no rule"     // removed: no rule keeps it
	RuleStatus     = "status"      // removed: recorded as "status broken" or "status suspicious"
)

// Decision is what a policy decided for one snapshot.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	// Rules names the rules that keep the snapshot, or for a removed one why
	// none did.
	Rules []string
}

// GroupPlan is the outcome of a policy for one group.
type GroupPlan struct {
	Key       GroupKey
	Decisions []Decision // newest first
}

// Kept returns the snapshots the plan keeps, newest first.
func (g *GroupPlan) Kept() []*Snapshot { return g.pick(true) }

// Removed returns the snapshots the plan removes, newest first.
func (g *GroupPlan) Removed() []*Snapshot { return g.pick(false) }

func (g *GroupPlan) pick(keep bool) []*Snapshot {
	var out []*Snapshot
	for _, d := range g.Decisions {
		if d.Keep == keep {
			out = append(out, d.Snapshot)
		}
	}
	return out
}

// bucket is one counting rule while a policy is applied.
type bucket struct {
	rule  string
	count int
	key   func(t time.Time, i int) int
	last  int
}

// PlanForget applies p to snaps (in any order) and returns one plan per
// group, ordered by group key. It does no I/O. When the policy would remove
// every snapshot of a group, which happens only to a group without a good
// snapshot, it returns the plans and an error matching ErrForgetAll.
func PlanForget(snaps []*Snapshot, p Policy) ([]GroupPlan, error) {
	if p.Empty() {
		return nil, errors.New("forget: the policy has no keep rule")
	}
	for _, n := range []int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
		if n < -1 {
			return nil, fmt.Errorf("forget: keep count %d (use -1 for no limit)", n)
		}
	}
	gb := DefaultGroupBy
	if p.GroupBy != nil {
		gb = *p.GroupBy
	}
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	groups := map[string]*GroupPlan{}
	var order []string
	for _, s := range snaps {
		k := GroupKey{}
		if gb.Host {
			k.Host = s.Host
		}
		if gb.Name {
			k.Name = s.Name
		}
		if gb.Tags {
			k.Tags = slices.Compact(slices.Sorted(slices.Values(s.Tags)))
		}
		ks := k.Host + "\x00" + k.Name + "\x00" + strings.Join(k.Tags, "\x00")
		g := groups[ks]
		if g == nil {
			g = &GroupPlan{Key: k}
			groups[ks] = g
			order = append(order, ks)
		}
		g.Decisions = append(g.Decisions, Decision{Snapshot: s})
	}
	slices.Sort(order)
	plans := make([]GroupPlan, 0, len(order))
	var refused []string
	for _, ks := range order {
		g := groups[ks]
		planGroup(g, p, loc)
		if len(g.Kept()) == 0 {
			refused = append(refused, fmt.Sprintf("%s (%d snapshots, none good)", g.Key, len(g.Decisions)))
		}
		plans = append(plans, *g)
	}
	if len(refused) > 0 {
		return plans, fmt.Errorf("%w: %s; remove them by ID if that is intended", ErrForgetAll, strings.Join(refused, "; "))
	}
	return plans, nil
}

// planGroup decides every snapshot of one group.
func planGroup(g *GroupPlan, p Policy, loc *time.Location) {
	ds := g.Decisions
	slices.SortStableFunc(ds, func(a, b Decision) int {
		if c := b.Snapshot.Time.Compare(a.Snapshot.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Snapshot.ID.String(), b.Snapshot.ID.String())
	})
	buckets := []*bucket{
		{rule: RuleLast, count: p.Last, key: func(_ time.Time, i int) int { return i }},
		{rule: RuleHourly, count: p.Hourly, key: func(t time.Time, _ int) int {
			return t.Year()*1_000_000 + int(t.Month())*10_000 + t.Day()*100 + t.Hour()
		}},
		{rule: RuleDaily, count: p.Daily, key: func(t time.Time, _ int) int {
			return t.Year()*10_000 + int(t.Month())*100 + t.Day()
		}},
		{rule: RuleWeekly, count: p.Weekly, key: func(t time.Time, _ int) int {
			y, w := t.ISOWeek()
			return y*100 + w
		}},
		{rule: RuleMonthly, count: p.Monthly, key: func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }},
		{rule: RuleYearly, count: p.Yearly, key: func(t time.Time, _ int) int { return t.Year() }},
	}
	for _, b := range buckets {
		b.last = -1
	}
	var cutoff time.Time
	if len(ds) > 0 && !p.Within.IsZero() {
		cutoff = p.Within.before(ds[0].Snapshot.Time)
	}
	newestGood := true
	for i := range ds {
		d := &ds[i]
		s := d.Snapshot
		good, broken := s.Status == "", s.Status == StatusBroken
		if !broken {
			for _, tag := range p.Tags {
				if s.HasTag(tag) {
					d.Rules = append(d.Rules, RuleTag+" "+tag)
				}
			}
			if !p.Within.IsZero() && !s.Time.Before(cutoff) {
				d.Rules = append(d.Rules, RuleWithin+" "+p.Within.String())
			}
		}
		if good {
			t := s.Time.In(loc)
			for _, b := range buckets {
				if b.count == 0 {
					continue
				}
				if k := b.key(t, i); k != b.last {
					b.last = k
					b.count--
					d.Rules = append(d.Rules, b.rule)
				}
			}
			if newestGood && len(d.Rules) == 0 {
				d.Rules = append(d.Rules, RuleNewestGood)
			}
			newestGood = false
		}
		d.Keep = len(d.Rules) > 0
		switch {
		case d.Keep:
		case good:
			d.Rules = []string{RuleNone}
		default:
			d.Rules = []string{RuleStatus + " " + s.Status}
		}
	}
}

// RemoveSnapshots deletes the snapshot files of ids. Their data stays until
// a prune. The caller must hold an exclusive lock; a snapshot already gone
// is not an error.
func (r *Repository) RemoveSnapshots(ctx context.Context, ids []crypt.ID) error {
	if !r.holdsExclusive() {
		return errors.New("forget: removing snapshots needs the exclusive lock")
	}
	ids = slices.SortedFunc(slices.Values(ids), func(a, b crypt.ID) int { return cmp.Compare(a.String(), b.String()) })
	for _, id := range ids {
		err := r.be.Delete(ctx, store.Handle{Type: store.SnapshotFile, Name: id.String()})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove snapshot %s: %w", id.Short(), err)
		}
	}
	return nil
}
