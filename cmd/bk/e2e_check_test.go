package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// checkJSON is the --json document of `bk check`, as a consumer reads it.
type checkJSON struct {
	Problems []struct {
		Kind      string   `json:"kind"`
		Pack      string   `json:"pack"`
		Blob      string   `json:"blob"`
		What      string   `json:"what"`
		Lost      bool     `json:"lost"`
		Snapshots []string `json:"snapshots"`
	} `json:"problems"`
	Warnings []struct {
		Kind string `json:"kind"`
		File string `json:"file"`
		What string `json:"what"`
	} `json:"warnings"`
	Snapshots    int     `json:"snapshots"`
	Packs        int     `json:"packs"`
	PacksRead    int     `json:"packs_read"`
	BlobsChecked int     `json:"blobs_checked"`
	BytesRead    int64   `json:"bytes_read"`
	Duration     float64 `json:"duration_seconds"`
}

// checkJSON runs `bk check --json` with args and returns the exit code and the
// parsed report.
func (r *testRepo) checkJSON(args ...string) (int, checkJSON) {
	r.t.Helper()
	res := r.run(nil, append([]string{"check", "--json"}, args...)...)
	var rep checkJSON
	decodeJSON(r.t, res.stdout, &rep)
	if (res.code == 0) != (len(rep.Problems) == 0) || res.code > 1 {
		r.t.Fatalf("exit %d with %d problems\n%s", res.code, len(rep.Problems), res)
	}
	return res.code, rep
}

// lines returns the lines of out that start with prefix.
func lines(out []byte, prefix string) []string {
	var ls []string
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			ls = append(ls, l)
		}
	}
	return ls
}

// newPacks returns the pack files that are not in before, largest first.
func (r *testRepo) newPacks(before []string) []string {
	r.t.Helper()
	var out []string
	for _, name := range r.files("data") {
		if !slices.Contains(before, name) {
			out = append(out, name)
		}
	}
	size := func(name string) int64 {
		fi, err := os.Stat(r.packPath(name))
		if err != nil {
			r.t.Fatal(err)
		}
		return fi.Size()
	}
	slices.SortFunc(out, func(a, b string) int { return int(size(b) - size(a)) })
	return out
}

func TestE2ECheck(t *testing.T) {
	r := newRepo(t)
	d1, d2 := randomData(1, 3<<20), randomData(2, 2<<20)
	s1 := r.snapshot(d1, "--name", "one")
	packs1 := r.newPacks(nil)
	s2 := r.snapshot(d2, "--name", "two")
	packs2 := r.newPacks(packs1)

	res := r.must(nil, "check")
	if l := lines(res.stdout, "checked 2 snapshots"); len(l) != 1 || !strings.Contains(l[0], "0 errors") {
		t.Fatalf("no summary line\n%s", res.stdout)
	}
	res = r.must(nil, "check", "--read-data")
	if len(lines(res.stdout, "error:")) != 0 || len(lines(res.stdout, "checked")) != 1 {
		t.Fatalf("check --read-data of a clean repository:\n%s", res.stdout)
	}
	code, rep := r.checkJSON("--read-data")
	if code != 0 || rep.Snapshots != 2 || rep.PacksRead != len(packs1)+len(packs2) || rep.BlobsChecked < 4 ||
		rep.BytesRead < int64(len(d1)+len(d2)) {
		t.Fatalf("check --read-data --json: exit %d, %+v", code, rep)
	}

	// Flip a bit near each end of the first snapshot's data pack (two
	// blobs), and delete the second snapshot's data pack.
	p := r.packPath(packs1[0])
	data := readFile(t, p)
	data[40] ^= 1
	data[len(data)*3/4] ^= 1
	writeFile(t, p, data)
	if err := os.Remove(r.packPath(packs2[0])); err != nil {
		t.Fatal(err)
	}

	res = r.run(nil, "check")
	res.wantFail(t, 1, "check found 1 error")
	if l := lines(res.stdout, "error:"); len(l) != 1 || !strings.Contains(l[0], packs2[0][:8]) ||
		!strings.Contains(l[0], s2.ShortID) || strings.Contains(l[0], s1.ShortID) {
		t.Fatalf("structural check: want one error naming pack %s and snapshot %s\n%s", packs2[0][:8], s2.ShortID, res.stdout)
	}

	res = r.run(nil, "check", "--read-data")
	code, rep = r.checkJSON("--read-data")
	errs := lines(res.stdout, "error:")
	if res.code != 1 || code != 1 || len(errs) != len(rep.Problems) || len(errs) < 2 {
		t.Fatalf("check --read-data: exit %d, %d error lines, %d problems in JSON\n%s", res.code, len(errs), len(rep.Problems), res.stdout)
	}
	for i, pr := range rep.Problems {
		line := errs[i]
		if !strings.Contains(line, pr.Pack[:8]) || !strings.Contains(line, pr.Snapshots[0][:8]) || !pr.Lost {
			t.Errorf("line %q does not match problem %+v", line, pr)
		}
		if pr.Kind == "blob" && (pr.Pack != packs1[0] || len(pr.Snapshots) != 1 || pr.Snapshots[0] != s1.ID) {
			t.Errorf("blob problem %+v; want pack %s and snapshot %s", pr, packs1[0][:8], s1.ShortID)
		}
	}
	if !strings.Contains(string(res.stderr), "check found") {
		t.Errorf("stderr: %s", res.stderr)
	}
}

func TestE2ERepair(t *testing.T) {
	r := newRepo(t)
	d1, d2 := randomData(3, 1<<20), randomData(4, 1<<20)
	s1 := r.snapshot(d1, "--name", "one")
	packs1 := r.newPacks(nil)
	r.snapshot(d2, "--name", "two")

	// Every index file lost: repair index brings the repository back.
	for _, name := range r.files("index") {
		if err := os.Remove(filepath.Join(r.path, "index", name)); err != nil {
			t.Fatal(err)
		}
	}
	r.run(nil, "check").wantFail(t, 1, "check found 2 errors")
	r.run(nil, "repair", "snapshots").wantFail(t, 1, "repair index")
	res := r.must(nil, "repair", "index")
	if !strings.Contains(string(res.stdout), "indexed 4 packs") {
		t.Fatalf("repair index:\n%s", res.stdout)
	}
	r.must(nil, "check", "--read-data")
	r.wantRestore(s1.ID, d1)

	// A pack lost: repair index and repair snapshots leave a clean check
	// with a warning for the broken snapshot.
	if err := os.Remove(r.packPath(packs1[0])); err != nil {
		t.Fatal(err)
	}
	r.run(nil, "check").wantFail(t, 1)
	r.must(nil, "repair", "index")
	res = r.must(nil, "repair", "snapshots", "--dry-run")
	if l := lines(res.stdout, "would mark snapshot "+s1.ShortID); len(l) != 1 {
		t.Fatalf("repair snapshots --dry-run:\n%s", res.stdout)
	}
	r.run(nil, "check").wantFail(t, 1)
	res = r.must(nil, "repair", "snapshots")
	if l := lines(res.stdout, "marked snapshot "+s1.ShortID); len(l) != 1 {
		t.Fatalf("repair snapshots:\n%s", res.stdout)
	}
	res = r.must(nil, "check", "--read-data")
	if w := lines(res.stdout, "warning:"); len(w) != 1 || !strings.Contains(w[0], "broken") {
		t.Fatalf("check after repair:\n%s", res.stdout)
	}
	var list []struct{ Name, Status string }
	decodeJSON(t, r.must(nil, "snapshots", "--json").stdout, &list)
	var status []string
	for _, s := range list {
		status = append(status, s.Name+":"+s.Status)
	}
	if !slices.Equal(status, []string{"one:broken", "two:"}) {
		t.Fatalf("snapshots %v", status)
	}
}

func TestE2ECheckUsage(t *testing.T) {
	r := newRepo(t)
	for _, args := range [][]string{
		{"check", "--read-data", "--read-data-subset", "1/2"},
		{"check", "--read-data-subset", "0/2"},
		{"check", "--read-data-subset", "150%"},
		{"check", "--seed", "3"},
		{"check", "extra"},
		{"repair", "bogus"},
		{"repair", "index", "extra"},
	} {
		r.run(nil, args...).wantFail(t, exitUsage)
	}
	for _, args := range [][]string{{"check", "--help"}, {"repair", "--help"}, {"repair", "snapshots", "--help"}} {
		res := r.must(nil, args...)
		if !strings.Contains(string(res.stdout), "Examples:") {
			t.Errorf("bk %s lacks examples:\n%s", strings.Join(args, " "), res.stdout)
		}
	}
	res := r.must(nil, "check", "--read-data-subset", "1/3")
	if l := lines(res.stdout, "checked"); len(l) != 1 || !strings.Contains(l[0], "0 errors") {
		t.Fatalf("check of an empty repository:\n%s", res.stdout)
	}
}
