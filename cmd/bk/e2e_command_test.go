package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestE2ECommandSource runs sources with `snapshot -- COMMAND`: a failing,
// killed or silent command saves no snapshot and exits 3; a good one is
// stored exactly.
func TestE2ECommandSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string // after "snapshot --name src"
		msg  []string // in the error line; nil means success
	}{
		{"exit status", []string{"--", "sh", "-c", "echo partial; echo boom >&2; exit 7"},
			[]string{"no snapshot saved", "status 7", "boom"}},
		{"killed", []string{"--", "sh", "-c", "echo partial; kill -9 $$"},
			[]string{"no snapshot saved", "signal", "kill"}},
		{"empty output", []string{"--", "true"},
			[]string{"no snapshot saved", "0 bytes", "--allow-empty"}},
		{"missing program", []string{"--", "/nonexistent/pg_dump"},
			[]string{"no snapshot saved", "/nonexistent/pg_dump"}},
		{"empty output allowed", []string{"--allow-empty", "--", "true"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t)
			res := r.run(nil, append([]string{"snapshot", "--name", "src"}, tc.args...)...)
			if tc.msg == nil {
				if res.code != 0 {
					t.Fatalf("want success\n%s", res)
				}
				r.wantRestore("latest", nil)
				return
			}
			res.wantFail(t, exitSource, tc.msg...)
			if list := r.snapshots(); len(list) != 0 {
				t.Fatalf("a failed source saved %d snapshots", len(list))
			}
			if locks := r.files("locks"); len(locks) != 0 {
				t.Errorf("a failed snapshot left its lock: %v", locks)
			}
		})
	}

	t.Run("success", func(t *testing.T) {
		t.Parallel()
		r := newRepo(t)
		data := randomData(700, 3<<20+17)
		file := filepath.Join(t.TempDir(), "secret-dump-path.bin")
		writeFile(t, file, data)
		// Stderr output of a successful command is not an error.
		script := `cat "$1"; echo progress >&2`
		res := r.must(nil, "snapshot", "--name", "src", "--tag", "cmd", "--json", "--", "sh", "-c", script, "sh", file)
		var s snapshotResult
		decodeJSON(t, res.stdout, &s)
		if s.Size != int64(len(data)) {
			t.Fatalf("size %d, want %d", s.Size, len(data))
		}
		r.wantRestore(s.ID, data)
		list := r.snapshots()
		if len(list) != 1 || list[0].Command != "sh" {
			t.Fatalf("want one snapshot with command \"sh\", got %+v", list)
		}
		// Arguments may hold secrets; they are never recorded.
		raw := r.must(nil, "cat", "snapshot", s.ID).stdout
		if bytes.Contains(raw, []byte("secret-dump-path")) {
			t.Errorf("the snapshot records the command's arguments:\n%s", raw)
		}
	})
}

// TestE2EHelp checks that `bk --help` and `--help` of every command succeed
// and show examples.
func TestE2EHelp(t *testing.T) {
	t.Parallel()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" {
				walk(sub, append(append([]string(nil), path...), sub.Name()))
			}
		}
	}
	walk(newApp(nil, nil, nil).rootCommand(), nil)
	if len(paths) < 12 {
		t.Fatalf("found only %d commands: %v", len(paths), paths)
	}
	env := baseEnv()
	for _, path := range paths {
		t.Run(strings.Join(append([]string{"bk"}, path...), " "), func(t *testing.T) {
			t.Parallel()
			res := runBK(t, env, nil, append(path, "--help")...)
			if res.code != 0 {
				t.Fatalf("want exit 0\n%s", res)
			}
			out := string(res.stdout)
			if !strings.Contains(out, "Examples:\n  ") || !strings.Contains(out, "Usage:") {
				t.Errorf("help lacks usage or examples:\n%s", out)
			}
			if len(path) > 0 && !strings.Contains(out, "bk "+strings.Join(path, " ")) {
				t.Errorf("help does not show the command line:\n%s", out)
			}
		})
	}
}
