package gen

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func edit(t testing.TB, src []byte, cfg EditConfig) ([]byte, EditStats) {
	t.Helper()
	var out bytes.Buffer
	st, err := Edit(&out, bytes.NewReader(src), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.InBytes != int64(len(src)) || st.OutBytes != int64(out.Len()) {
		t.Fatalf("stats say %d bytes in and %d out, streams have %d and %d", st.InBytes, st.OutBytes, len(src), out.Len())
	}
	return out.Bytes(), st
}

func TestEditDeterministic(t *testing.T) {
	orig, _, _ := generate(t, Config{Size: 1 << 20, Seed: 7, EditFraction: -1})
	a, sa := edit(t, orig, EditConfig{Seed: 1, Fraction: 0.01})
	b, sb := edit(t, orig, EditConfig{Seed: 1, Fraction: 0.01})
	if !bytes.Equal(a, b) || sa != sb {
		t.Fatal("same input and config, different output")
	}
	c, _ := edit(t, orig, EditConfig{Seed: 2, Fraction: 0.01})
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same output")
	}
	if bytes.Equal(a, orig) {
		t.Fatal("nothing edited")
	}
}

func TestEditNone(t *testing.T) {
	orig, _, _ := generate(t, Config{Size: 256 << 10, Seed: 2, EditFraction: -1})
	out, st := edit(t, orig, EditConfig{Seed: 1})
	if !bytes.Equal(out, orig) || st.Changed+st.Inserted+st.Deleted != 0 {
		t.Fatal("Fraction 0 still edited")
	}
	if _, err := Edit(&bytes.Buffer{}, bytes.NewReader(orig), EditConfig{Fraction: 1.5}); err == nil {
		t.Fatal("Fraction 1.5 accepted")
	}
}

// nonRows returns the lines of a dump outside its COPY blocks.
func nonRows(dump []byte) []string {
	var out []string
	in := false
	for _, line := range strings.Split(string(dump), "\n") {
		switch {
		case strings.HasPrefix(line, "COPY "):
			in = true
			out = append(out, line)
		case line == `\.`:
			in = false
			out = append(out, line)
		case !in:
			out = append(out, line)
		}
	}
	return out
}

// TestEditNights edits an edited copy, as successive nights do, and checks
// the counts, the spread of the edits and that the schema is untouched.
func TestEditNights(t *testing.T) {
	orig, _, gst := generate(t, Config{Size: 8 << 20, Seed: 5})
	night := orig
	for i, frac := range []float64{0.001, 0.01, 0.01} {
		prev := night
		var st EditStats
		night, st = edit(t, prev, EditConfig{Seed: uint64(10 + i), Fraction: frac})
		pr, nr := rows(prev), rows(night)
		if i == 0 && st.Rows != gst.Rows {
			t.Fatalf("%d rows read, the dump has %d", st.Rows, gst.Rows)
		}
		if int64(len(pr)) != st.Rows || int64(len(nr)) != st.Rows+st.Inserted-st.Deleted {
			t.Fatalf("night %d: %d and %d rows, stats %+v", i+2, len(pr), len(nr), st)
		}
		inNew := make(map[string]bool, len(nr))
		for _, r := range nr {
			inNew[r] = true
		}
		inPrev := make(map[string]bool, len(pr))
		var gone [4]int
		var onlyPrev, onlyNew, editBytes int64
		for k, r := range pr {
			inPrev[r] = true
			if !inNew[r] {
				gone[4*k/len(pr)]++
				onlyPrev++
			}
		}
		for _, r := range nr {
			if !inPrev[r] {
				onlyNew++
				editBytes += int64(len(r)) + 1
			}
		}
		if onlyPrev != st.Changed+st.Deleted || onlyNew != st.Changed+st.Inserted || editBytes != st.EditBytes {
			t.Errorf("night %d: rows only before %d, only after %d (%d bytes); stats %+v", i+2, onlyPrev, onlyNew, editBytes, st)
		}
		// Four standard deviations of a binomial count.
		n, want := float64(st.Changed+st.Inserted+st.Deleted), frac*float64(st.Rows)
		if math.Abs(n-want) > 4*math.Sqrt(want) {
			t.Errorf("night %d: %.0f rows edited, want about %.0f", i+2, n, want)
		}
		if frac >= 0.01 {
			for q, n := range gone {
				if n < int(onlyPrev)/8 {
					t.Errorf("night %d: quarter %d has %d of %d edits: not spread", i+2, q, n, onlyPrev)
				}
			}
		}
		if a, b := nonRows(prev), nonRows(night); strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("night %d: lines outside COPY blocks changed", i+2)
		}
		if st.IdealBytes <= 0 || st.IdealBytes >= st.EditBytes {
			t.Errorf("night %d: ideal %d bytes for %d bytes of new rows", i+2, st.IdealBytes, st.EditBytes)
		}
	}
}

func TestEditLongLines(t *testing.T) {
	long := strings.Repeat("x", 3*flushSize)
	var b strings.Builder
	b.WriteString("COPY public.t (id, v) FROM stdin;\n")
	for i := range 200 {
		b.WriteString(strings.Repeat("1", 1+i%5) + "\t" + long[:1+i*i] + "\n")
	}
	b.WriteString("1\t" + long + "\n\\.\n")
	in := []byte(b.String())
	out, st := edit(t, in, EditConfig{Seed: 3, Fraction: 0.5})
	if st.Rows != 201 || st.Changed+st.Inserted+st.Deleted == 0 {
		t.Fatalf("stats %+v", st)
	}
	if !bytes.HasSuffix(out, []byte("\\.\n")) || !bytes.Contains(out, []byte(long)) {
		t.Fatal("the long row or the end of the block was lost")
	}
}

func BenchmarkEdit(b *testing.B) {
	var buf bytes.Buffer
	if _, err := Generate(&buf, nil, Config{Size: 64 << 20, Seed: 1, EditFraction: -1}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st, err := Edit(discard{}, bytes.NewReader(buf.Bytes()), EditConfig{Seed: 1, Fraction: 0.01})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(st.InBytes)
	}
}
