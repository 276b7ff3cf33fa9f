package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// parseSize parses a byte count such as "1GiB", "256MiB", "1.5GB", "4096"
// or "64k" (k, m, g, t alone are binary units).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("parse size %q: not a number of bytes", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("parse size %q: unknown unit %q", s, unit)
	}
	return int64(v * mult), nil
}

// formatSize formats n bytes in binary units: "1.00 GiB", "512 B".
func formatSize(n int64) string {
	if n < 0 {
		return "-" + formatSize(-n)
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, units := float64(n), []string{"KiB", "MiB", "GiB", "TiB"}
	for i, u := range units {
		f /= 1024
		if f < 1024 || i == len(units)-1 {
			return strconv.FormatFloat(f, 'f', 2, 64) + " " + u
		}
	}
	return ""
}

// mbps is a throughput in MB/s (10^6 bytes per second).
func mbps(bytes int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) / seconds / 1e6
}

// ratio formats a/b as "1.23x", or "-" when either is unknown.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// withCommas formats n with thousands separators.
func withCommas(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + withCommas(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// loadAverage returns the 1, 5 and 15 minute load averages from /proc, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
