package gen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func generate(t testing.TB, cfg Config) (orig, edited []byte, st Stats) {
	t.Helper()
	var o, e bytes.Buffer
	st, err := Generate(&o, &e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.OrigBytes != int64(o.Len()) || st.EditedBytes != int64(e.Len()) {
		t.Fatalf("stats say %d and %d bytes, streams have %d and %d", st.OrigBytes, st.EditedBytes, o.Len(), e.Len())
	}
	return o.Bytes(), e.Bytes(), st
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Size: 1 << 20, Seed: 7}
	o1, e1, s1 := generate(t, cfg)
	o2, e2, s2 := generate(t, cfg)
	if !bytes.Equal(o1, o2) || !bytes.Equal(e1, e2) || s1.IdealBytes != s2.IdealBytes {
		t.Fatal("same config, different output")
	}
	cfg.Seed = 8
	o3, e3, _ := generate(t, cfg)
	if bytes.Equal(o1, o3) || bytes.Equal(e1, e3) {
		t.Fatal("different seeds, same output")
	}
}

// TestStable pins the output for one seed, so that benchmark results stay
// comparable across versions. Change the digest only on purpose.
func TestStable(t *testing.T) {
	o, e, _ := generate(t, Config{Size: 256 << 10, Seed: 1})
	h := sha256.New()
	h.Write(o)
	h.Write(e)
	got := hex.EncodeToString(h.Sum(nil))[:16]
	const want = "fb078b6c0510a8a8"
	if got != want {
		t.Errorf("generator output changed: digest %s, want %s", got, want)
	}
}

func TestSize(t *testing.T) {
	for _, size := range []int64{64 << 10, 1 << 20, 5 << 20} {
		_, _, st := generate(t, Config{Size: size, Seed: 3})
		for _, n := range []int64{st.OrigBytes, st.EditedBytes} {
			if d := float64(n-size) / float64(size); d < -0.05 || d > 0.05 {
				t.Errorf("size %d: got %d bytes (%+.1f%%)", size, n, 100*d)
			}
		}
	}
}

// rows returns the COPY data lines of a dump, in order.
func rows(dump []byte) []string {
	var out []string
	in := false
	for _, line := range strings.Split(string(dump), "\n") {
		switch {
		case strings.HasPrefix(line, "COPY "):
			in = true
		case line == `\.`:
			in = false
		case in:
			out = append(out, line)
		}
	}
	return out
}

func TestEdits(t *testing.T) {
	orig, edited, st := generate(t, Config{Size: 8 << 20, Seed: 5})
	or, er := rows(orig), rows(edited)
	if int64(len(or)) != st.Rows {
		t.Fatalf("%d rows in the dump, stats say %d", len(or), st.Rows)
	}
	if want := st.Rows + st.Inserted - st.Deleted; int64(len(er)) != want {
		t.Fatalf("%d rows in the edited copy, want %d", len(er), want)
	}
	inEdited := make(map[string]bool, len(er))
	for _, r := range er {
		inEdited[r] = true
	}
	inOrig := make(map[string]bool, len(or))
	var gone [4]int // rows missing from the edited copy, per quarter of the dump
	for i, r := range or {
		inOrig[r] = true
		if !inEdited[r] {
			gone[4*i/len(or)]++
		}
	}
	var onlyOrig, onlyEdited, editBytes int64
	for _, n := range gone {
		onlyOrig += int64(n)
	}
	for _, r := range er {
		if !inOrig[r] {
			onlyEdited++
			editBytes += int64(len(r)) + 1
		}
	}
	if onlyOrig != st.Changed+st.Deleted || onlyEdited != st.Changed+st.Inserted {
		t.Errorf("rows only in the dump %d, only in the copy %d; stats: %+v", onlyOrig, onlyEdited, st)
	}
	if editBytes != st.EditBytes {
		t.Errorf("new rows have %d bytes, stats say %d", editBytes, st.EditBytes)
	}
	frac := float64(st.Changed+st.Inserted+st.Deleted) / float64(st.Rows)
	if frac < 0.007 || frac > 0.013 {
		t.Errorf("%.2f%% of rows edited, want about 1%%", 100*frac)
	}
	for q, n := range gone {
		if n < int(onlyOrig)/8 {
			t.Errorf("quarter %d of the dump has %d of %d edits: not spread", q, n, onlyOrig)
		}
	}
	if st.IdealBytes <= 0 || st.IdealBytes >= st.EditBytes {
		t.Errorf("ideal %d bytes for %d bytes of new rows", st.IdealBytes, st.EditBytes)
	}
}

func TestNoEdits(t *testing.T) {
	o, e, st := generate(t, Config{Size: 256 << 10, Seed: 2, EditFraction: -1})
	if !bytes.Equal(o, e) || st.Changed+st.Inserted+st.Deleted != 0 {
		t.Fatal("EditFraction < 0 still edited")
	}
}

func TestTimestamp(t *testing.T) {
	for us, want := range map[int64]string{
		0:                "1970-01-01 00:00:00+00",
		1709210096123456: "2024-02-29 12:34:56.123456+00",
		951782400000001:  "2000-02-29 00:00:00.000001+00",
	} {
		if got := string(appendTimestamp(nil, us)); got != want {
			t.Errorf("appendTimestamp(%d) = %s, want %s", us, got, want)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		st, err := Generate(discard{}, discard{}, Config{Size: 64 << 20, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(st.OrigBytes)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
