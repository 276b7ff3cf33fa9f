package main

import (
	"strings"
	"testing"

	"github.com/bk-backup/bk/engines"
)

func TestCompareTables(t *testing.T) {
	manifest := []engines.Table{{Name: "a", Rows: 10}, {Name: "b", Rows: 5, Estimate: true}, {Name: "gone", Rows: 1}}
	restored := []engines.Table{{Name: "a", Rows: 9}, {Name: "b", Rows: 7}, {Name: "extra", Rows: 3}}
	tables, rows, problems := compareTables(manifest, restored)
	if rows != 19 || len(tables) != 4 {
		t.Fatalf("rows %d, tables %+v", rows, tables)
	}
	want := []string{"a: 9 rows restored, the manifest counted 10", "gone is in the manifest but not", "extra is in the restored database but not"}
	if len(problems) != len(want) {
		t.Fatalf("problems %q", problems)
	}
	for i, w := range want {
		if !strings.Contains(problems[i], w) {
			t.Errorf("problem %d: %q, want %q", i, problems[i], w)
		}
	}
	// An estimate that differs is reported in the table list but is no problem.
	if _, _, p := compareTables(manifest[1:2], restored[1:2]); len(p) != 0 {
		t.Fatalf("an estimate failed the drill: %q", p)
	}
}
