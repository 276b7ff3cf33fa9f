package main

import (
	"slices"
	"testing"
)

func TestDaysRows(t *testing.T) {
	if got := daysRows(200 << 20); got != 200<<20/daysRowBytes {
		t.Errorf("daysRows(200 MiB) = %d", got)
	}
	if got := daysRows(1); got != 1000 {
		t.Errorf("daysRows(1) = %d, want the floor of 1000", got)
	}
	for _, c := range []struct {
		rows int64
		frac float64
		want int64
	}{{1_000_000, 0.01, 10_000}, {1000, 0.0001, 1}, {1000, 0, 1}, {1000, 1, 1000}, {1999, 0.5, 1000}} {
		if got := daysUpdated(c.rows, c.frac); got != c.want {
			t.Errorf("daysUpdated(%d, %v) = %d, want %d", c.rows, c.frac, got, c.want)
		}
	}
}

func TestServerURL(t *testing.T) {
	u, err := serverURL("postgres://postgres@127.0.0.1:5432", "postgres", "postgresql")
	if err != nil {
		t.Fatal(err)
	}
	if got := withDatabase(u, "bk_bench_days_pg"); got != "postgres://postgres@127.0.0.1:5432/bk_bench_days_pg" {
		t.Errorf("withDatabase = %s", got)
	}
	m, err := serverURL("mariadb://root@db.example:3307/", "mysql", "mariadb")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--no-defaults", "--protocol=TCP", "-h", "db.example", "-P", "3307", "-u", "root"}
	if got := mysqlArgs(m); !slices.Equal(got, want) {
		t.Errorf("mysqlArgs = %q, want %q", got, want)
	}
	m, _ = serverURL("mysql://127.0.0.1", "mysql")
	if got := mysqlArgs(m); !slices.Equal(got, []string{"--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", "3306"}) {
		t.Errorf("mysqlArgs without port or user = %q", got)
	}
	for _, bad := range []string{"mysql://127.0.0.1", "postgres://u:secret@h", "postgres://h/app", "postgres:///x", "::"} {
		if _, err := serverURL(bad, "postgres"); err == nil {
			t.Errorf("serverURL(%q) succeeded", bad)
		}
	}
}

func TestDaysEngineList(t *testing.T) {
	for _, ok := range []string{"postgres,mysql,sqlite", "sqlite", " mysql , postgres"} {
		if err := daysEngineList(ok); err != nil {
			t.Errorf("daysEngineList(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "redis", "postgres,", "pg"} {
		if err := daysEngineList(bad); err == nil {
			t.Errorf("daysEngineList(%q) succeeded", bad)
		}
	}
}

func TestSQLQuote(t *testing.T) {
	if got := sqlQuote("/tmp/it's.db"); got != "'/tmp/it''s.db'" {
		t.Errorf("sqlQuote = %s", got)
	}
}

func TestParseSourceSummary(t *testing.T) {
	for _, in := range []string{`{"id":"ab","size":10,"added_bytes":3}`, "[{\"id\":\"ab\",\"size\":10,\"added_bytes\":3}]\n"} {
		s, err := parseSourceSummary([]byte(in))
		if err != nil || s.ID != "ab" || s.Size != 10 || s.AddedBytes != 3 {
			t.Errorf("parseSourceSummary(%s) = %+v, %v", in, s, err)
		}
	}
	for _, in := range []string{"", "[]", `[{"id":"a"},{"id":"b"}]`, "snapshot saved"} {
		if _, err := parseSourceSummary([]byte(in)); err == nil {
			t.Errorf("parseSourceSummary(%q) succeeded", in)
		}
	}
}
