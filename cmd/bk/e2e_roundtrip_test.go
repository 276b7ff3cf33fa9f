package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestE2EPasswordSources initialises a repository with each way of giving the
// password, stores and restores a stream with it, and opens the repository
// with the same password given another way.
func TestE2EPasswordSources(t *testing.T) {
	t.Parallel()
	const pw = "pa ss\tw0rd-ü"
	tests := []struct {
		name string
		// env and args give the password; file is a file holding it.
		env  func(file string) []string
		args func(file string) []string
	}{
		{"BK_PASSWORD", func(string) []string { return []string{"BK_PASSWORD=" + pw} }, nil},
		{"--password-file", nil, func(f string) []string { return []string{"--password-file", f} }},
		{"BK_PASSWORD_FILE", func(f string) []string { return []string{"BK_PASSWORD_FILE=" + f} }, nil},
		{"--password-command", nil, func(f string) []string { return []string{"--password-command", "cat '" + f + "'"} }},
		{"BK_PASSWORD_COMMAND", func(f string) []string { return []string{"BK_PASSWORD_COMMAND=cat '" + f + "'"} }, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "pass")
			writeFile(t, file, []byte(pw+"\n")) // the trailing newline is not part of the password
			path := filepath.Join(dir, "repo")
			env := baseEnv("BK_REPO=" + path)
			if tc.env != nil {
				env = append(env, tc.env(file)...)
			}
			var pargs []string
			if tc.args != nil {
				pargs = tc.args(file)
			}
			bk := func(stdin []byte, args ...string) result {
				t.Helper()
				res := runBK(t, env, bytes.NewReader(stdin), append(args, pargs...)...)
				if res.code != 0 {
					t.Fatalf("want success\n%s", res)
				}
				return res
			}
			bk(nil, "init")
			data := randomData(uint64(100+i), 1000+i*777)
			bk(data, "snapshot", "--stdin", "--name", "pw")
			if got := bk(nil, "restore", "latest", "--stdout").stdout; !bytes.Equal(got, data) {
				t.Fatalf("restored %d bytes, want %d identical bytes", len(got), len(data))
			}
			// The same password through BK_PASSWORD opens the repository.
			other := &testRepo{t: t, path: path, env: baseEnv("BK_REPO="+path, "BK_PASSWORD="+pw)}
			other.wantRestore("latest", data)
		})
	}
}

// TestE2ERoundTripSizes stores streams from 0 bytes to ~40 MiB in a
// repository with 1 MiB packs and restores each to stdout and to a folder.
func TestE2ERoundTripSizes(t *testing.T) {
	t.Parallel()
	r := newRepo(t, "--pack-size", "1048576")
	var cfg struct {
		PackSize int64 `json:"pack_size"`
	}
	decodeJSON(t, r.must(nil, "cat", "config").stdout, &cfg)
	if cfg.PackSize != 1<<20 {
		t.Fatalf("pack_size %d, want %d", cfg.PackSize, 1<<20)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// A pack closes once it holds 1 MiB, so with chunks of at most 4 MiB
	// a pack holds less than 5 MiB of a random stream.
	tests := []struct {
		name     string
		size     int
		minPacks int // new pack files the snapshot must add
	}{
		{"empty", 0, 0},
		{"one-byte", 1, 1},
		{"5MiB", 5<<20 + rng.IntN(1<<20), 1},
		{"40MiB", 40<<20 + rng.IntN(1<<20), 8},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := r.with(t)
			data := randomData(uint64(200+i), tc.size)
			packsBefore := len(r.files("data"))
			args := []string{"--name", "size-" + tc.name}
			if tc.size == 0 {
				args = append(args, "--allow-empty")
			}
			s := r.snapshot(data, args...)
			if added := len(r.files("data")) - packsBefore; added < tc.minPacks {
				t.Errorf("snapshot added %d pack files, want at least %d", added, tc.minPacks)
			}
			r.wantRestore(s.ID, data)

			target := filepath.Join(t.TempDir(), "out")
			res := r.must(nil, "restore", s.ID, "--target", target)
			if !strings.Contains(string(res.stdout), "restored snapshot "+s.ShortID) {
				t.Errorf("restore output lacks the snapshot: %s", res.stdout)
			}
			entries, err := os.ReadDir(target)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != "size-"+tc.name {
				t.Fatalf("target holds %v, want only the file size-%s (no temporary file)", entries, tc.name)
			}
			if got := readFile(t, filepath.Join(target, entries[0].Name())); !bytes.Equal(got, data) {
				t.Fatalf("restored file has %d bytes, want %d identical bytes", len(got), len(data))
			}
		})
	}
}

// TestE2ERestoreSelect resolves snapshots by full ID, prefix and "latest"
// with filters, and checks the errors for ambiguous and unknown references.
func TestE2ERestoreSelect(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	base := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	type snap struct {
		name, host string
		tags       []string
		at         int // hours after base
	}
	snaps := []snap{
		{"app", "h1", []string{"nightly"}, 1},
		{"app", "h2", []string{"weekly"}, 2},
		{"db", "h1", []string{"nightly"}, 3},
		{"app", "h1", []string{"nightly", "weekly"}, 0},
	}
	data := make([][]byte, len(snaps))
	ids := make([]string, len(snaps))
	for i, s := range snaps {
		data[i] = randomData(uint64(300+i), 3000+i)
		args := []string{"--name", s.name, "--host", s.host,
			"--time", base.Add(time.Duration(s.at) * time.Hour).Format(time.RFC3339)}
		for _, tag := range s.tags {
			args = append(args, "--tag", tag)
		}
		ids[i] = r.snapshot(data[i], args...).ID
	}

	tests := []struct {
		name string
		ref  string
		args []string
		want int // index into snaps
	}{
		{"full ID", ids[1], nil, 1},
		{"short prefix", ids[2][:8], nil, 2},
		{"uppercase prefix", strings.ToUpper(ids[0][:10]), nil, 0},
		{"latest", "latest", nil, 2},
		{"latest name", "latest", []string{"--name", "app"}, 1},
		{"latest name host", "latest", []string{"--name", "app", "--host", "h1"}, 0},
		{"latest tag", "latest", []string{"--tag", "weekly"}, 1},
		{"latest two tags", "latest", []string{"--tag", "weekly", "--tag", "nightly"}, 3},
		{"latest host tag", "latest", []string{"--host", "h1", "--tag", "nightly"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := r.with(t)
			r.wantRestore(tc.ref, data[tc.want], tc.args...)
		})
	}

	t.Run("filters list", func(t *testing.T) {
		r := r.with(t)
		got := r.snapshots("--name", "app", "--host", "h1")
		if len(got) != 2 || got[0].ID != ids[3] || got[1].ID != ids[0] {
			t.Fatalf("snapshots --name app --host h1: got %d, want [%s %s] oldest first", len(got), ids[3][:8], ids[0][:8])
		}
	})
	t.Run("no match for filter", func(t *testing.T) {
		r := r.with(t)
		r.run(nil, "restore", "latest", "--name", "nope", "--stdout").wantFail(t, exitFailure, "no snapshot matches")
	})
	t.Run("unknown prefix", func(t *testing.T) {
		r := r.with(t)
		prefix := "ffffffffff"
		for _, id := range ids {
			if strings.HasPrefix(id, prefix) {
				prefix = "0000000000"
			}
		}
		r.run(nil, "restore", prefix, "--stdout").wantFail(t, exitFailure, "no snapshot matches", prefix)
	})
	t.Run("ambiguous prefix", func(t *testing.T) {
		r := r.with(t)
		// Add snapshots until two IDs share their first hex digit; 17
		// IDs always do.
		shared := func() string {
			seen := map[byte]bool{}
			for _, id := range ids {
				if seen[id[0]] {
					return id[:1]
				}
				seen[id[0]] = true
			}
			return ""
		}
		prefix := shared()
		for i := 0; prefix == ""; i++ {
			ids = append(ids, r.snapshot(randomData(uint64(400+i), 100), "--name", "filler").ID)
			prefix = shared()
		}
		res := r.run(nil, "restore", prefix, "--stdout")
		res.wantFail(t, exitFailure, "ambiguous", fmt.Sprintf("%q", prefix))
		if len(res.stdout) != 0 {
			t.Errorf("an ambiguous restore wrote %d bytes to stdout", len(res.stdout))
		}
	})
}

// TestE2ERestoreTargetName checks that --target names the file after the
// snapshot without leaving the folder, and never overwrites.
func TestE2ERestoreTargetName(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	data := randomData(500, 4096)
	id := r.snapshot(data, "--name", "../../etc/app").ID
	target := filepath.Join(t.TempDir(), "t")
	r.must(nil, "restore", id, "--target", target)
	if got := readFile(t, filepath.Join(target, "app")); !bytes.Equal(got, data) {
		t.Fatalf("restored file differs")
	}
	res := r.run(nil, "restore", id, "--target", target)
	res.wantFail(t, exitFailure, "already exists")
	if got := readFile(t, filepath.Join(target, "app")); !bytes.Equal(got, data) {
		t.Fatalf("a refused restore changed the existing file")
	}
	if files := storedFiles(t, target); len(files) != 1 {
		t.Fatalf("target holds %v, want only app", files)
	}
}

// TestE2EOutputFormats checks the table of `snapshots` and the --json
// documents of snapshot, snapshots, restore and key list.
func TestE2EOutputFormats(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	host, _ := os.Hostname()
	data := randomData(600, 300_000)

	res := r.must(data, "snapshot", "--stdin", "--json", "--name", "app", "--tag", "t1", "--tag", "t2")
	m := jsonKeys(t, res.stdout, "id", "short_id", "name", "host", "time", "tags", "size",
		"added_bytes", "added_blobs", "chunks", "duration_seconds")
	var s snapshotResult
	decodeJSON(t, res.stdout, &s)
	switch {
	case len(s.ID) != 64 || s.ShortID != s.ID[:8]:
		t.Errorf("id %q, short_id %q", s.ID, s.ShortID)
	case s.Name != "app" || s.Host != host || !slices.Equal(s.Tags, []string{"t1", "t2"}):
		t.Errorf("name %q host %q tags %v", s.Name, s.Host, s.Tags)
	case s.Size != int64(len(data)) || s.AddedBytes < s.Size || s.AddedBlobs < 2 || s.Chunks < 1:
		t.Errorf("size %d added_bytes %d added_blobs %d chunks %d for %d incompressible bytes",
			s.Size, s.AddedBytes, s.AddedBlobs, s.Chunks, len(data))
	}
	if _, ok := m["tags"].([]any); !ok {
		t.Errorf("tags is %T, want an array", m["tags"])
	}

	// An identical stream adds nothing.
	again := r.snapshot(data, "--name", "app")
	if again.AddedBytes != 0 || again.AddedBlobs != 0 || again.ID == s.ID {
		t.Errorf("identical re-snapshot: id %s, added_bytes %d, added_blobs %d; want a new ID and 0 added",
			again.ShortID, again.AddedBytes, again.AddedBlobs)
	}
	// Without tags, the JSON has an empty array, not null.
	noTags := r.must([]byte("x"), "snapshot", "--stdin", "--json", "--name", "other").stdout
	if !bytes.Contains(noTags, []byte(`"tags": []`)) {
		t.Errorf("snapshot without tags: want \"tags\": []\n%s", noTags)
	}

	t.Run("snapshots table", func(t *testing.T) {
		r := r.with(t)
		out := string(r.must(nil, "snapshots").stdout)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 {
			t.Fatalf("want header, 3 rows and a count; got\n%s", out)
		}
		if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"ID", "Time", "Host", "Name", "Tags", "Size", "Added", "Status"}) {
			t.Errorf("header %q", lines[0])
		}
		row := lines[1]
		for _, want := range []string{s.ShortID, host, "app", "t1,t2", formatBytes(s.Size), formatBytes(s.AddedBytes)} {
			if !strings.Contains(row, want) {
				t.Errorf("row lacks %q: %s", want, row)
			}
		}
		if !strings.HasPrefix(lines[2], again.ShortID) || !strings.Contains(lines[2], formatBytes(0)) {
			t.Errorf("second row should show %s with 0 B added: %s", again.ShortID, lines[2])
		}
		if lines[4] != "3 snapshots" {
			t.Errorf("last line %q, want \"3 snapshots\"", lines[4])
		}
	})

	t.Run("snapshots json", func(t *testing.T) {
		r := r.with(t)
		raw := r.must(nil, "snapshots", "--json", "--name", "app").stdout
		var list []map[string]any
		decodeJSON(t, raw, &list)
		if len(list) != 2 {
			t.Fatalf("want 2 snapshots named app, got %d", len(list))
		}
		for _, k := range []string{"id", "time", "host", "name", "tags", "kind", "tree", "size",
			"stream_hash", "chunks", "added_bytes", "added_blobs", "program"} {
			if _, ok := list[0][k]; !ok {
				t.Errorf("snapshots --json lacks %q", k)
			}
		}
		got := r.snapshots("--name", "app")
		if got[0].ID != s.ID || got[0].Size != s.Size || got[0].AddedBytes != s.AddedBytes ||
			got[1].ID != again.ID || got[1].AddedBytes != 0 {
			t.Errorf("snapshots --json disagrees with snapshot --json: %+v", got)
		}
		empty := r.must(nil, "snapshots", "--json", "--name", "none").stdout
		if strings.TrimSpace(string(empty)) != "[]" {
			t.Errorf("no match: want [], got %s", empty)
		}
	})

	t.Run("restore json", func(t *testing.T) {
		r := r.with(t)
		target := t.TempDir()
		raw := r.must(nil, "restore", s.ShortID, "--target", target, "--json").stdout
		jsonKeys(t, raw, "snapshot", "name", "bytes", "target", "duration_seconds")
		var rr restoreResult
		decodeJSON(t, raw, &rr)
		if rr.Snapshot != s.ID || rr.Name != "app" || rr.Bytes != s.Size || rr.Target != filepath.Join(target, "app") {
			t.Errorf("restore --json: %+v", rr)
		}
		// With --stdout the data owns stdout; the JSON goes to stderr.
		res := r.must(nil, "restore", s.ShortID, "--stdout", "--json")
		if !bytes.Equal(res.stdout, data) {
			t.Fatalf("restore --stdout --json: stdout is not exactly the stream")
		}
		decodeJSON(t, res.stderr, &rr)
		if rr.Bytes != s.Size {
			t.Errorf("restore --stdout --json on stderr: %+v", rr)
		}
	})

	t.Run("key list json", func(t *testing.T) {
		r := r.with(t)
		var keys []map[string]any
		decodeJSON(t, r.must(nil, "key", "list", "--json").stdout, &keys)
		if len(keys) != 1 {
			t.Fatalf("want 1 key, got %d", len(keys))
		}
		for _, k := range []string{"name", "created", "host", "current"} {
			if _, ok := keys[0][k]; !ok {
				t.Errorf("key list --json lacks %q", k)
			}
		}
		if keys[0]["current"] != true || keys[0]["host"] != host {
			t.Errorf("key list --json: %v", keys[0])
		}
	})
}
