package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyInfo is one element of `key list --json`.
type keyInfo struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Current bool      `json:"current"`
}

// keys returns `key list --json` run with password pw.
func (r *testRepo) keys(pw string) []keyInfo {
	r.t.Helper()
	res := r.runEnv([]string{"BK_PASSWORD=" + pw}, "key", "list", "--json")
	if res.code != 0 {
		r.t.Fatalf("key list\n%s", res)
	}
	var keys []keyInfo
	decodeJSON(r.t, res.stdout, &keys)
	return keys
}

// opens reports whether pw opens the repository; any other failure than a
// wrong password fails the test.
func (r *testRepo) opens(pw string) bool {
	r.t.Helper()
	res := r.runEnv([]string{"BK_PASSWORD=" + pw}, "snapshots", "--json")
	switch res.code {
	case 0:
		return true
	case exitBadPass:
		res.wantFail(r.t, exitBadPass, "wrong password")
		return false
	}
	r.t.Fatalf("open with a password\n%s", res)
	return false
}

// TestE2EKeys adds, lists, removes and changes passwords.
func TestE2EKeys(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	data := randomData(800, 10000)
	r.snapshot(data, "--name", "k")
	const second, third = "second password", "third password"

	res := r.runEnv([]string{"BK_NEW_PASSWORD=" + second}, "key", "add", "--json")
	if res.code != 0 {
		t.Fatalf("key add\n%s", res)
	}
	var added struct{ Added string }
	decodeJSON(t, res.stdout, &added)
	if len(added.Added) != 64 {
		t.Fatalf("key add --json: %s", res.stdout)
	}
	if !r.opens(testPassword) || !r.opens(second) {
		t.Fatal("after key add, both passwords must open the repository")
	}
	if r.opens("not a password") {
		t.Fatal("a wrong password opened the repository")
	}

	keys := r.keys(second)
	if len(keys) != 2 {
		t.Fatalf("want 2 keys, got %+v", keys)
	}
	var first string
	for _, k := range keys {
		if k.Current != (k.Name == added.Added) {
			t.Errorf("opened with the second password, key %s has current=%v", k.Name[:8], k.Current)
		}
		if k.Name != added.Added {
			first = k.Name
		}
	}
	// The table marks the key in use with "*".
	table := string(r.runEnv([]string{"BK_PASSWORD=" + second}, "key", "list").stdout)
	rows := strings.Split(strings.TrimSpace(table), "\n")[1:]
	if len(rows) != 2 {
		t.Fatalf("key list: want a header and 2 rows:\n%s", table)
	}
	for _, row := range rows {
		if strings.HasPrefix(row, "*") != strings.Contains(row, added.Added[:8]) {
			t.Errorf("key list marks the wrong key as current:\n%s", table)
		}
	}

	// The key in use cannot be removed.
	r.run(nil, "key", "remove", first[:8]).wantFail(t, exitFailure, "key in use")
	r.run(nil, "key", "remove", "ffffffffffff").wantFail(t, exitFailure, "no key matches")
	if !r.opens(testPassword) {
		t.Fatal("a refused removal removed the key")
	}
	// Another key can; its password stops working.
	res = r.runEnv([]string{"BK_PASSWORD=" + second}, "key", "remove", first[:10])
	if res.code != 0 || !strings.Contains(string(res.stdout), "removed key "+first[:8]) {
		t.Fatalf("key remove of the other key\n%s\nstdout: %s", res, res.stdout)
	}
	if r.opens(testPassword) {
		t.Fatal("a removed key still opens the repository")
	}
	// The last key cannot be removed, not even by prefix of itself.
	r.runEnv([]string{"BK_PASSWORD=" + second}, "key", "remove", added.Added[:8]).wantFail(t, exitFailure, "refusing")
	if keys := r.keys(second); len(keys) != 1 {
		t.Fatalf("want 1 key left, got %d", len(keys))
	}

	// passwd replaces the key in use.
	res = r.runEnv([]string{"BK_PASSWORD=" + second, "BK_NEW_PASSWORD=" + third}, "key", "passwd")
	if res.code != 0 {
		t.Fatalf("key passwd\n%s", res)
	}
	if r.opens(second) {
		t.Fatal("the old password still opens the repository after key passwd")
	}
	keys = r.keys(third)
	if len(keys) != 1 || !keys[0].Current || keys[0].Name == added.Added {
		t.Fatalf("after key passwd: %+v", keys)
	}
	r.runEnv([]string{"BK_PASSWORD=" + second}, "restore", "latest", "--stdout").wantFail(t, exitBadPass, "wrong password")
	// The data is still there under the new password.
	if got := r.runEnv([]string{"BK_PASSWORD=" + third}, "restore", "latest", "--stdout").stdout; !bytes.Equal(got, data) {
		t.Fatal("restore with the new password differs")
	}

	// --new-password-file also works, and trims the newline.
	file := filepath.Join(t.TempDir(), "new")
	writeFile(t, file, []byte("from file\n"))
	if res := r.runEnv([]string{"BK_PASSWORD=" + third}, "key", "add", "--new-password-file", file); res.code != 0 {
		t.Fatalf("key add --new-password-file\n%s", res)
	}
	if !r.opens("from file") {
		t.Fatal("the password from --new-password-file does not open the repository")
	}
}

// TestE2EStaleLock kills a snapshot with SIGKILL, so its lock stays behind,
// and checks that exclusive commands see it as stale and unlock removes it.
func TestE2EStaleLock(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	p := r.start(nil, "snapshot", "--name", "s", "--", "sh", "-c", "sleep 30")
	waitFor(t, 30*time.Second, "the snapshot's lock", func() bool { return len(r.files("locks")) == 1 })
	p.kill() // bk, sh and sleep: the whole process group
	if res := p.wait(); res.code != -1 {
		t.Fatalf("want bk killed by a signal\n%s", res)
	}
	if locks := r.files("locks"); len(locks) != 1 {
		t.Fatalf("want the dead process's lock to remain, got %v", locks)
	}

	// The holder's PID is gone on this host, so an exclusive lock proceeds.
	if res := r.runEnv([]string{"BK_NEW_PASSWORD=second"}, "key", "add"); res.code != 0 {
		t.Fatalf("key add with a stale lock\n%s", res)
	}
	if locks := r.files("locks"); len(locks) != 1 {
		t.Fatalf("key add should leave only the stale lock, got %v", locks)
	}

	res := r.must(nil, "unlock", "--json")
	var out struct{ Removed int }
	decodeJSON(t, res.stdout, &out)
	if out.Removed != 1 {
		t.Fatalf("unlock removed %d locks, want 1", out.Removed)
	}
	if locks := r.files("locks"); len(locks) != 0 {
		t.Fatalf("locks left after unlock: %v", locks)
	}
	if res := r.must(nil, "unlock"); strings.TrimSpace(string(res.stdout)) != "removed 0 locks" {
		t.Errorf("second unlock: %q", res.stdout)
	}
	if list := r.snapshots(); len(list) != 0 {
		t.Fatalf("the killed snapshot was saved: %+v", list)
	}
}

// TestE2EUnlockRemoveAll removes a live lock only with --remove-all.
func TestE2EUnlockRemoveAll(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	release := filepath.Join(t.TempDir(), "release")
	p := r.start(nil, "snapshot", "--name", "s", "--", "sh", "-c", "while [ ! -e '"+release+"' ]; do sleep 0.02; done; echo x")
	waitFor(t, 30*time.Second, "the snapshot's lock", func() bool { return len(r.files("locks")) == 1 })
	if res := r.must(nil, "unlock"); !strings.Contains(string(res.stdout), "removed 0 locks") {
		t.Fatalf("unlock removed a live lock: %s", res.stdout)
	}
	if res := r.must(nil, "unlock", "--remove-all"); !strings.Contains(string(res.stdout), "removed 1 locks") {
		t.Fatalf("unlock --remove-all: %s", res.stdout)
	}
	writeFile(t, release, nil)
	if res := p.wait(); res.code != 0 {
		t.Fatalf("the snapshot whose lock was removed failed\n%s", res)
	}
}
