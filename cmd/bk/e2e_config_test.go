package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a config file naming a 0600 password file in a fresh
// folder, with body appended after the [repository] table.
func writeConfig(t testing.TB, body string) string {
	t.Helper()
	dir := t.TempDir()
	pass := filepath.Join(dir, "repo.pass")
	if err := os.WriteFile(pass, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bk.toml")
	cfg := "[repository]\npath = \"" + filepath.Join(dir, "repo") + "\"\npassword_file = \"" + pass + "\"\n" + body
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestE2EConfigValidate(t *testing.T) {
	good := writeConfig(t, `
[jobs.app]
sources = ["sqlite:///var/lib/app/app.db", "postgres://backup@127.0.0.1/app"]
schedule = "daily"
keep_daily = 7
keep_weekly = 4

[jobs.app.notify]
webhook = "https://hooks.example.com/bk"
`)
	res := runBK(t, baseEnv(), nil, "--config", good, "config", "validate")
	if res.code != 0 || strings.TrimSpace(string(res.stdout)) != "config "+good+": 1 job, OK" {
		t.Fatalf("good config: %s\nstdout: %s", res, res.stdout)
	}
	// BK_CONFIG names the file too.
	res = runBK(t, baseEnv("BK_CONFIG="+good), nil, "config", "validate", "--json")
	if res.code != 0 {
		t.Fatalf("BK_CONFIG: %s", res)
	}
	out := jsonKeys(t, res.stdout, "file", "jobs", "problems")
	if jobs, _ := out["jobs"].([]any); len(jobs) != 1 {
		t.Errorf("--json jobs: %s", res.stdout)
	}

	bad := writeConfig(t, `
[jobs.app]
sources = ["mongodb://db/app", "postgres://u:hunter2@db/app"]
keep_dayly = 7
`)
	res = runBK(t, baseEnv(), nil, "--config", bad, "config", "validate")
	res.wantFail(t, 2, "config "+bad, "3 problems")
	for _, want := range []string{
		bad + ":6: jobs.app.sources[0]: unknown engine \"mongodb\"",
		bad + ":6: jobs.app.sources[1]: source postgres://u:xxxxx@db/app holds a password",
		bad + ":7: unknown key keep_dayly in [jobs.app]; did you mean keep_daily?",
	} {
		if !strings.Contains(string(res.stderr), want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if strings.Contains(string(res.stderr)+string(res.stdout), "hunter2") {
		t.Error("the password in the URL was printed")
	}
	res = runBK(t, baseEnv(), nil, "--config", bad, "config", "validate", "--json")
	if res.code != 2 {
		t.Fatalf("--json bad: %s", res)
	}
	out = jsonKeys(t, res.stdout, "problems")
	if probs, _ := out["problems"].([]any); len(probs) != 3 {
		t.Errorf("--json problems: %s", res.stdout)
	}

	// A group-readable password file and, with --connect, a missing repository.
	if err := os.Chmod(filepath.Join(filepath.Dir(good), "repo.pass"), 0o640); err != nil {
		t.Fatal(err)
	}
	res = runBK(t, baseEnv(), nil, "--config", good, "config", "validate", "--connect")
	res.wantFail(t, 2, "problem")
	if !strings.Contains(string(res.stderr), good+":3: password_file: ") || !strings.Contains(string(res.stderr), good+":2: repository ") {
		t.Errorf("stderr: %s", res.stderr)
	}

	res = runBK(t, baseEnv(), nil, "--config", filepath.Join(t.TempDir(), "none.toml"), "config", "validate")
	res.wantFail(t, 2, "does not exist")
}
