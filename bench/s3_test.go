package main

import "testing"

func TestProcStatCPU(t *testing.T) {
	for _, c := range []struct {
		stat string
		want float64
	}{
		// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
		{"4242 (versitygw) S 1 4242 4242 0 -1 4194560 9000 0 3 0 1234 56 0 0 20 0 12 0", 12.90},
		{"7 (a) b) c) R 1 7 7 0 -1 0 0 0 0 0 100 200 0 0", 3},
		{"7 (x) S 1 2 3", -1},
		{"no parenthesis", -1},
		{"7 (x) S 1 7 7 0 -1 0 0 0 0 0 u 200", -1},
	} {
		if got := procStatCPU(c.stat); got != c.want {
			t.Errorf("procStatCPU(%q) = %v, want %v", c.stat, got, c.want)
		}
	}
}

func TestVersitygwVersion(t *testing.T) {
	out := "Version  : v1.8.0\nBuild    : 1a2b3c\nBuildTime: 2025-01-01\n"
	if got := versitygwVersion(out); got != "version v1.8.0" {
		t.Errorf("versitygwVersion = %q, want %q", got, "version v1.8.0")
	}
	if got := versitygwVersion("nothing here"); got != "" {
		t.Errorf("versitygwVersion of no version = %q, want empty", got)
	}
}
