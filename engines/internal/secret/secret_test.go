package secret

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, content string
		mode          os.FileMode
		want, err     string
	}{
		{"ok", "s3cret\n", 0o600, "s3cret", ""},
		{"crlf", "s3cret\r\n", 0o400, "s3cret", ""},
		{"group", "s3cret\n", 0o640, "", "group- or world-readable"},
		{"world", "s3cret\n", 0o604, "", "group- or world-readable"},
		{"empty", "\n", 0o600, "", "is empty"},
		{"lines", "a\nb\n", 0o600, "", "one line"},
	}
	for _, tc := range tests {
		got, err := ReadPasswordFile(write(tc.name, tc.content, tc.mode))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: %v, want an error with %q and no secret", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
	}
	if _, err := ReadPasswordFile(dir); err == nil {
		t.Error("a folder was read as a password file")
	}
}

func TestEnv(t *testing.T) {
	env := []string{"A=1", "B=2", "A=3"}
	if v, ok := LookupEnv(env, "A"); !ok || v != "3" {
		t.Fatalf("LookupEnv A = %q %v", v, ok)
	}
	if _, ok := LookupEnv(env, "C"); ok {
		t.Fatal("found C")
	}
	if got := SetEnv(env, "A", "9"); !slices.Equal(got, []string{"B=2", "A=9"}) || env[0] != "A=1" {
		t.Fatalf("SetEnv = %q, env now %q", got, env)
	}
}
