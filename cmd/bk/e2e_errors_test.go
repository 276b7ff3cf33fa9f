package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestE2EExitCodes checks the documented exit codes and that each failure
// explains itself on one line.
func TestE2EExitCodes(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.snapshot([]byte("hello"), "--name", "s")
	dir := t.TempDir()
	nonEmpty := filepath.Join(dir, "nonempty")
	if err := os.Mkdir(nonEmpty, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(nonEmpty, "notes.txt"), []byte("mine"))
	emptyDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(emptyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const wrong = "Wr0ng-Secret-5e1f"

	tests := []struct {
		name string
		env  []string // changes to the repository's environment: NAME=VALUE sets, NAME removes
		args []string
		code int
		msg  []string // substrings of the error line
		not  string   // a substring the error line must not have
	}{
		{"missing repository", []string{"BK_REPO=" + filepath.Join(dir, "nothing")}, []string{"snapshots"},
			exitNoRepo, []string{"no repository", "bk init"}, ""},
		{"empty folder is no repository", []string{"BK_REPO=" + emptyDir}, []string{"restore", "latest", "--stdout"},
			exitNoRepo, []string{"no repository"}, ""},
		{"no repository given", []string{"BK_REPO="}, []string{"snapshots"},
			exitUsage, []string{"--repo"}, ""},
		{"wrong password", []string{"BK_PASSWORD=" + wrong}, []string{"snapshots"},
			exitBadPass, []string{"wrong password"}, ""},
		{"wrong password file", []string{"BK_PASSWORD", "BK_PASSWORD_FILE=" + writeTemp(t, wrong)}, []string{"restore", "latest", "--stdout"},
			exitBadPass, []string{"wrong password"}, ""},
		{"no --name", nil, []string{"snapshot", "--stdin"},
			exitUsage, []string{"--name is required"}, ""},
		{"stdin and command", nil, []string{"snapshot", "--stdin", "--name", "x", "--", "echo", "hi"},
			exitUsage, []string{"not both"}, ""},
		{"nothing to back up", nil, []string{"snapshot", "--name", "x"},
			exitUsage, []string{"--stdin or -- COMMAND"}, ""},
		{"unknown flag", nil, []string{"snapshots", "--bogus"},
			exitUsage, []string{"unknown flag: --bogus"}, ""},
		{"restore needs a destination", nil, []string{"restore", "latest"},
			exitUsage, []string{"--target", "--stdout"}, ""},
		{"bad --time", nil, []string{"snapshot", "--stdin", "--name", "x", "--time", "yesterday"},
			exitUsage, []string{"RFC 3339"}, ""},
		{"unknown command", nil, []string{"frobnicate"},
			exitUsage, []string{`unknown command "frobnicate"`}, ""},
		{"unknown key subcommand", nil, []string{"key", "frobnicate"},
			exitUsage, []string{`unknown command "frobnicate" for "bk key"`}, ""},
		{"restore without snapshot", nil, []string{"restore", "--stdout"},
			exitUsage, []string{"accepts 1 arg"}, ""},
		{"extra argument", nil, []string{"snapshots", "extra"},
			exitUsage, []string{`unknown command "extra"`}, ""},
		{"init over a repository", nil, []string{"init"},
			exitFailure, []string{r.path, "already exists"}, ""},
		{"init into a non-empty folder", []string{"BK_REPO=" + nonEmpty}, []string{"init"},
			exitFailure, []string{nonEmpty, "not an empty folder"}, "repository already exists"},
		{"init onto a file", []string{"BK_REPO=" + filepath.Join(nonEmpty, "notes.txt")}, []string{"init"},
			exitFailure, []string{"not an empty folder"}, "repository already exists"},
		{"missing password file", nil, []string{"snapshots", "--password-file", filepath.Join(dir, "missing")},
			exitFailure, []string{"password file", "no such file"}, ""},
		{"password file is a folder", []string{"BK_PASSWORD", "BK_PASSWORD_FILE=" + dir}, []string{"snapshots"},
			exitFailure, []string{"password file", "is a directory"}, ""},
		{"empty password file", []string{"BK_PASSWORD", "BK_PASSWORD_FILE=" + writeTemp(t, "\n")}, []string{"snapshots"},
			exitFailure, []string{"password file", "empty"}, ""},
		{"failing password command", nil, []string{"snapshots", "--password-command", "exit 4"},
			exitFailure, []string{"password command failed"}, ""},
		{"BK_PASSWORD empty", []string{"BK_PASSWORD="}, []string{"snapshots"},
			exitFailure, []string{"BK_PASSWORD is set but empty"}, ""},
		{"BK_PASSWORD empty at init", []string{"BK_PASSWORD=", "BK_REPO=" + filepath.Join(dir, "new")}, []string{"init"},
			exitFailure, []string{"BK_PASSWORD is set but empty"}, ""},
		{"BK_NEW_PASSWORD empty", []string{"BK_NEW_PASSWORD="}, []string{"key", "add"},
			exitFailure, []string{"BK_NEW_PASSWORD is set but empty"}, ""},
		{"no password at all", []string{"BK_PASSWORD"}, []string{"snapshots"},
			exitFailure, []string{"no password given"}, ""},
	}
	// Sequential: "key add" takes an exclusive lock, so a concurrent case
	// holding a shared one would turn its exit 1 into 11.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := slices.Clone(r.env)
			for _, kv := range tc.env {
				// "NAME=" empties a variable; a bare "NAME" removes it.
				name, _, _ := strings.Cut(kv, "=")
				env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
				if strings.Contains(kv, "=") {
					env = append(env, kv)
				}
			}
			res := runBK(t, env, nil, tc.args...)
			res.wantFail(t, tc.code, tc.msg...)
			if tc.not != "" && strings.Contains(res.errLine(t), tc.not) {
				t.Errorf("error line should not say %q: %s", tc.not, res.errLine(t))
			}
			if tc.code == exitUsage && !bytes.Contains(res.stderr, []byte("bk --help")) {
				t.Errorf("a usage error should point to bk --help:\n%s", res.stderr)
			}
			for _, secret := range []string{testPassword, wrong} {
				if bytes.Contains(res.stdout, []byte(secret)) || bytes.Contains(res.stderr, []byte(secret)) {
					t.Errorf("output contains the password %q", secret)
				}
			}
		})
	}
	// Nothing above changed the repository.
	t.Cleanup(func() {
		if got := len(r.snapshots()); got != 1 {
			t.Errorf("after the failures, %d snapshots, want 1", got)
		}
	})
}

// writeTemp writes content to a new temporary file and returns its path.
func writeTemp(t testing.TB, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "pass-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// TestE2ELocked holds a shared lock with a running snapshot and checks that
// an exclusive command fails with exit 11 while shared ones proceed.
func TestE2ELocked(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	release := filepath.Join(t.TempDir(), "release")
	script := "while [ ! -e '" + release + "' ]; do sleep 0.02; done; echo x"
	holder := r.start(nil, "snapshot", "--name", "s", "--", "sh", "-c", script)
	waitFor(t, 30*time.Second, "the snapshot's lock", func() bool { return len(r.files("locks")) == 1 })

	res := r.runEnv([]string{"BK_NEW_PASSWORD=other"}, "key", "add")
	res.wantFail(t, exitLocked, "locked", "shared lock by PID "+strconv.Itoa(holder.pid()), "bk unlock")
	// Another shared lock does not conflict.
	r.snapshot([]byte("concurrent"), "--name", "c")
	if holder.exited() {
		t.Fatalf("the lock holder exited early:\n%s", holder.wait())
	}

	writeFile(t, release, nil)
	if res := holder.wait(); res.code != 0 {
		t.Fatalf("lock holder failed\n%s", res)
	}
	if locks := r.files("locks"); len(locks) != 0 {
		t.Fatalf("locks left after every process finished: %v", locks)
	}
	r.wantRestore("latest", []byte("x\n"), "--name", "s")
	if res := r.runEnv([]string{"BK_NEW_PASSWORD=other"}, "key", "add"); res.code != 0 {
		t.Fatalf("key add after the lock was released\n%s", res)
	}
}
