package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "256MiB": 256 << 20, "10GiB": 10 << 30, "1.5GiB": 3 << 29,
		"64k": 64 << 10, "4096": 4096, "1GB": 1e9, "500 MB": 500e6, "2g": 2 << 30,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "1XB", "-1GiB", "1..2MiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1 << 20: "1.00 MiB", 3 << 29: "1.50 GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMedian(t *testing.T) {
	runs := []run{{Name: "a", WallSec: 3}, {Name: "b", WallSec: 9}, {Name: "a", WallSec: 1}, {Name: "a", WallSec: 2}, {Name: "a", WallSec: 5}}
	if got, n := median(runs, "a"); got.WallSec != 2 || n != 4 {
		t.Errorf("median of a = %v over %d runs, want 2 over 4", got.WallSec, n)
	}
	if _, n := median(runs, "c"); n != 0 {
		t.Errorf("median of no runs counted %d", n)
	}
}

func TestShare(t *testing.T) {
	for _, c := range []struct {
		a, b int64
		want string
	}{{1, 1000, "0.10%"}, {25, 1000, "2.5%"}, {500, 1000, "50%"}, {0, 5, "-"}, {5, 0, "-"}} {
		if got := share(c.a, c.b); got != c.want {
			t.Errorf("share(%d, %d) = %s, want %s", c.a, c.b, got, c.want)
		}
	}
}
