package main

import (
	"slices"
	"testing"
	"time"
)

func TestRetentionDays(t *testing.T) {
	for n := 2; n <= 60; n++ {
		a, b := retentionDay(n-1), retentionDay(n)
		if b.Sub(a) != 24*time.Hour || a.YearDay() == b.YearDay() {
			t.Fatalf("day %d at %v, day %d at %v: want one calendar day apart", n-1, a, n, b)
		}
	}
}

// TestRetentionArgs pins where each tool's snapshot time goes: borg takes
// options before its two positional arguments.
func TestRetentionArgs(t *testing.T) {
	work := t.TempDir()
	for _, c := range []struct {
		name string
		want []string
	}{
		{"bk", []string{"--time", "2026-10-03T12:00:00Z"}},
		{"restic", []string{"--time", "2026-10-03 12:00:00"}},
		{"borg", []string{"--timestamp", "2026-10-03T12:00:00"}},
	} {
		rt := newRetentionTool(&tool{Name: c.name, bin: c.name}, work, "fastest", 10)
		args := rt.snapArgs(3)
		i := slices.Index(args, c.want[0])
		if i < 0 || i+1 >= len(args) || args[i+1] != c.want[1] {
			t.Errorf("%s snapshot args %q lack %q", c.name, args, c.want)
		}
		if c.name == "borg" && (args[len(args)-1] != "-" || i > len(args)-4) {
			t.Errorf("borg create args %q: the timestamp must come before REPO::ARCHIVE -", args)
		}
		if !slices.Contains(rt.env, "TZ=UTC") {
			t.Errorf("%s env %q lacks TZ=UTC", c.name, rt.env)
		}
		for _, op := range []string{opCheck, opReadData, opForgetDry, opPruneIdle, opForget, opPrune, opPruneIdle2, opPruneAll, opCheckAfter, opList} {
			if len(rt.ops[op]) == 0 {
				t.Errorf("%s has no command for %q", c.name, op)
			}
		}
	}
}
