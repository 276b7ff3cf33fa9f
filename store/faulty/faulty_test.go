package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/mem"
	"github.com/bk-backup/bk/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Backend { return faulty.New(mem.New()) })
}

func h(t store.FileType, name string) store.Handle { return store.Handle{Type: t, Name: name} }

func put(t *testing.T, b store.Backend, h store.Handle, data string) {
	t.Helper()
	if err := b.Put(t.Context(), h, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", h, err)
	}
}

func get(t *testing.T, b store.Backend, h store.Handle) string {
	t.Helper()
	data, err := store.ReadAll(t.Context(), b, h)
	if err != nil {
		t.Fatalf("get %s: %v", h, err)
	}
	return string(data)
}

// script is a fixed run of operations. The files it reads and deletes exist
// in the inner backend beforehand, so a fault in one step does not change
// the outcome of another.
var script = []struct {
	op faulty.Op
	h  store.Handle
}{
	{faulty.OpPut, h(store.PackFile, "p1")},    // 1
	{faulty.OpPut, h(store.IndexFile, "i1")},   // 2
	{faulty.OpGet, h(store.PackFile, "p0")},    // 3
	{faulty.OpStat, h(store.IndexFile, "i0")},  // 4
	{faulty.OpList, h(store.PackFile, "")},     // 5
	{faulty.OpPut, h(store.PackFile, "p2")},    // 6
	{faulty.OpGet, h(store.IndexFile, "i0")},   // 7
	{faulty.OpDelete, h(store.PackFile, "p9")}, // 8
	{faulty.OpList, h(store.IndexFile, "")},    // 9
	{faulty.OpPut, h(store.KeyFile, "k1")},     // 10
}

// runScript runs the script on a backend with the given faults and returns
// its outcome, one character per step: '.' success, 'x' injected error,
// 'E' another error.
func runScript(t *testing.T, faults ...faulty.Fault) (string, *faulty.Backend) {
	t.Helper()
	inner := mem.New()
	for _, f := range []store.Handle{h(store.PackFile, "p0"), h(store.IndexFile, "i0"), h(store.PackFile, "p9")} {
		put(t, inner, f, "existing")
	}
	b := faulty.New(inner, faults...)
	ctx := t.Context()
	var out strings.Builder
	for _, s := range script {
		var err error
		switch s.op {
		case faulty.OpPut:
			err = b.Put(ctx, s.h, strings.NewReader("new"), 3)
		case faulty.OpGet:
			_, err = store.ReadAll(ctx, b, s.h)
		case faulty.OpStat:
			_, err = b.Stat(ctx, s.h)
		case faulty.OpList:
			err = b.List(ctx, s.h.Type, func(store.FileInfo) error { return nil })
		case faulty.OpDelete:
			err = b.Delete(ctx, s.h)
		}
		switch {
		case err == nil:
			out.WriteByte('.')
		case errors.Is(err, faulty.ErrInjected):
			out.WriteByte('x')
		default:
			out.WriteByte('E')
		}
	}
	return out.String(), b
}

func TestSelectors(t *testing.T) {
	fail := faulty.Fail(nil)
	tests := []struct {
		name  string
		fault faulty.Fault
		want  string
	}{
		{"every op", fail, "xxxxxxxxxx"},
		{"nth", fail.Nth(3), "..x......."},
		{"nth beyond the run", fail.Nth(11), ".........."},
		{"from", fail.From(8), ".......xxx"},
		{"from and times", fail.From(2).Times(2), ".xx......."},
		{"times", fail.Times(3), "xxx......."},
		{"puts", fail.On(faulty.OpPut), "xx...x...x"},
		{"second put", fail.On(faulty.OpPut).Nth(2), ".x........"},
		{"third write", fail.On(faulty.Writes).Nth(3), ".....x...."},
		{"reads", fail.On(faulty.Reads), "..xxx.x.x."},
		{"lists and deletes", fail.On(faulty.OpList | faulty.OpDelete), "....x..xx."},
		{"packs", fail.Types(store.PackFile), "x.x.xx.x.."},
		{"packs and keys", fail.Types(store.PackFile, store.KeyFile), "x.x.xx.x.x"},
		{"index gets", fail.On(faulty.OpGet).Types(store.IndexFile), "......x..."},
		{"second index op", fail.Types(store.IndexFile).Nth(2), "...x......"},
		{"never", fail.Types(store.LockFile), ".........."},
		{"named", fail.Names("p0", "i0"), "..xx..x..."},
		{"second op on p0 or p9", fail.Names("p0", "p9").Nth(2), ".......x.."},
		{"named gets of packs", fail.On(faulty.OpGet).Types(store.PackFile).Names("i0", "p0"), "..x......."},
		{"certain", fail.Prob(1, 7), "xxxxxxxxxx"},
		{"impossible", fail.Prob(0, 7), ".........."},
		{"late", fail.Late().On(faulty.OpPut), "xx...x...x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, b := runScript(t, tt.fault)
			if got != tt.want {
				t.Errorf("%v: outcome %s, want %s", tt.fault, got, tt.want)
			}
			fired := strings.Count(tt.want, "x")
			if b.Fired() != fired {
				t.Errorf("Fired() = %d, want %d", b.Fired(), fired)
			}
			if u := b.Unfired(); (fired == 0) != (len(u) == 1) {
				t.Errorf("Unfired() = %v after %d firings", u, fired)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	_, b := runScript(t)
	tests := []struct {
		ops   faulty.Op
		types []store.FileType
		want  int
	}{
		{faulty.AllOps, nil, 10},
		{faulty.OpPut, nil, 4},
		{faulty.Writes, nil, 5},
		{faulty.Reads, nil, 5},
		{faulty.Reads, []store.FileType{store.PackFile}, 2},
		{faulty.AllOps, []store.FileType{store.IndexFile, store.KeyFile}, 5},
		{faulty.OpDelete, []store.FileType{store.IndexFile}, 0},
	}
	if b.Ops() != len(script) {
		t.Errorf("Ops() = %d, want %d", b.Ops(), len(script))
	}
	for _, tt := range tests {
		if got := b.Count(tt.ops, tt.types...); got != tt.want {
			t.Errorf("Count(%v, %v) = %d, want %d", tt.ops, tt.types, got, tt.want)
		}
	}
}

func TestUnfired(t *testing.T) {
	never := faulty.Fail(nil).Types(store.LockFile)
	_, b := runScript(t, faulty.Fail(nil).Nth(1), never, faulty.Truncate(1).On(faulty.OpGet))
	u := b.Unfired()
	if len(u) != 2 || u[0].String() != never.String() {
		t.Errorf("Unfired() = %v, want the lock fault and the truncate on gets", u)
	}
	if b.Fired() != 1 {
		t.Errorf("Fired() = %d, want 1", b.Fired())
	}
}

func TestProbability(t *testing.T) {
	run := func(seed uint64) string {
		b := faulty.New(mem.New(), faulty.Fail(nil).On(faulty.OpStat).Prob(0.3, seed))
		var out strings.Builder
		for range 1000 {
			_, err := b.Stat(t.Context(), h(store.KeyFile, "k"))
			out.WriteString(map[bool]string{true: "x", false: "."}[errors.Is(err, faulty.ErrInjected)])
		}
		return out.String()
	}
	a, again, other := run(1), run(1), run(2)
	if a != again {
		t.Error("the same seed gave different faults")
	}
	if a == other {
		t.Error("different seeds gave the same faults")
	}
	if n := strings.Count(a, "x"); n < 230 || n > 370 {
		t.Errorf("%d of 1000 operations failed at p=0.3", n)
	}
}

func TestFailError(t *testing.T) {
	b := faulty.New(mem.New(), faulty.Fail(syscall.ENOSPC).On(faulty.OpPut))
	p := h(store.PackFile, "ab12")
	err := b.Put(t.Context(), p, strings.NewReader("data"), 4)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, faulty.ErrInjected) {
		t.Errorf("put: err = %v, want ENOSPC and ErrInjected", err)
	}
	if !strings.Contains(err.Error(), p.String()) {
		t.Errorf("error %q does not name %s", err, p)
	}
	if _, err := b.Stat(t.Context(), p); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stat after failed put: err = %v, want ErrNotFound", err)
	}
}

func TestLate(t *testing.T) {
	b := faulty.New(mem.New(), faulty.Fail(nil).Late().On(faulty.OpPut))
	p := h(store.PackFile, "ab12")
	if err := b.Put(t.Context(), p, strings.NewReader("data"), 4); !errors.Is(err, faulty.ErrInjected) {
		t.Errorf("put: err = %v, want ErrInjected", err)
	}
	if got := get(t, b, p); got != "data" {
		t.Errorf("late fault: stored %q, want the put to have taken effect", got)
	}
}

func TestDelay(t *testing.T) {
	const d = 30 * time.Millisecond
	b := faulty.New(mem.New(), faulty.Delay(d).On(faulty.OpStat), faulty.Delay(d).Fail(nil).On(faulty.OpDelete))
	p := h(store.KeyFile, "k")
	put(t, b, p, "key")

	start := time.Now()
	if _, err := b.Stat(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < d {
		t.Errorf("delayed stat took %v, want at least %v", el, d)
	}

	start = time.Now()
	if err := b.Delete(t.Context(), p); !errors.Is(err, faulty.ErrInjected) {
		t.Errorf("delete: err = %v, want ErrInjected", err)
	}
	if el := time.Since(start); el < d {
		t.Errorf("delayed delete took %v, want at least %v", el, d)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	slow := faulty.New(mem.New(), faulty.Delay(time.Hour))
	if _, err := slow.Stat(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stat with an hour's delay: err = %v, want the context's deadline", err)
	}
}

func TestTruncate(t *testing.T) {
	data := "0123456789abcdef"
	tests := []struct {
		name  string
		fault faulty.Fault
		keep  string
		err   error
	}{
		{"silent", faulty.Truncate(10), data[:10], nil},
		{"reported", faulty.Truncate(10).Fail(syscall.ENOSPC), data[:10], syscall.ENOSPC},
		{"to nothing", faulty.Truncate(0), "", nil},
		{"longer than the data", faulty.Truncate(100), data, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := mem.New()
			b := faulty.New(inner, tt.fault)
			p := h(store.PackFile, "ab12")
			err := b.Put(t.Context(), p, strings.NewReader(data), int64(len(data)))
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("put: err = %v, want %v", err, tt.err)
			}
			if got := get(t, inner, p); got != tt.keep {
				t.Errorf("stored %q, want %q", got, tt.keep)
			}
		})
	}
}

func TestTruncateKeepsSizeCheck(t *testing.T) {
	b := faulty.New(mem.New(), faulty.Truncate(100))
	if err := b.Put(t.Context(), h(store.PackFile, "ab"), strings.NewReader("short"), 10); err == nil {
		t.Error("put of 5 bytes with size 10 through an idle truncation: no error")
	}
}

func TestFlipBit(t *testing.T) {
	data := []byte("0123456789")
	flipped := bytes.Clone(data)
	flipped[1] ^= 1 << 5 // bit 13

	t.Run("put", func(t *testing.T) {
		inner := mem.New()
		b := faulty.New(inner, faulty.FlipBit(13).On(faulty.OpPut))
		p := h(store.PackFile, "ab12")
		put(t, b, p, string(data))
		if got := get(t, inner, p); got != string(flipped) {
			t.Errorf("stored %q, want %q", got, flipped)
		}
	})
	t.Run("get", func(t *testing.T) {
		b := faulty.New(mem.New(), faulty.FlipBit(13).On(faulty.OpGet).Nth(1))
		p := h(store.PackFile, "ab12")
		put(t, b, p, string(data))
		if got := get(t, b, p); got != string(flipped) {
			t.Errorf("first get = %q, want %q", got, flipped)
		}
		if got := get(t, b, p); got != string(data) {
			t.Errorf("second get = %q, want the stored %q", got, data)
		}
	})
	t.Run("bit beyond the data", func(t *testing.T) {
		b := faulty.New(mem.New(), faulty.FlipBit(13+80).On(faulty.OpGet))
		p := h(store.PackFile, "ab12")
		put(t, b, p, string(data))
		if got := get(t, b, p); got != string(flipped) {
			t.Errorf("get = %q, want %q (bit taken modulo the size)", got, flipped)
		}
	})
	t.Run("ranged get", func(t *testing.T) {
		b := faulty.New(mem.New(), faulty.FlipBit(0).On(faulty.OpGet))
		p := h(store.PackFile, "ab12")
		put(t, b, p, string(data))
		got, err := store.ReadAt(t.Context(), b, p, 5, 2)
		// Bytes 5 and 6 are "56"; bit 0 of the range turns '5' into '4'.
		if err != nil || string(got) != "46" {
			t.Errorf("ranged get = %q, %v; want %q", got, err, "46")
		}
	})
}

// TestSweep shows the sweep the package exists for: count the operations of
// a run, then fail each in turn and check the run reports it.
func TestSweep(t *testing.T) {
	run := func(ctx context.Context, b store.Backend) error {
		for i := range 3 {
			data := fmt.Sprintf("pack %d", i)
			p := h(store.PackFile, fmt.Sprintf("p%d", i))
			if err := b.Put(ctx, p, strings.NewReader(data), int64(len(data))); err != nil {
				return err
			}
		}
		return b.List(ctx, store.PackFile, func(fi store.FileInfo) error {
			return b.Get(ctx, h(store.PackFile, fi.Name), 0, 0, func(rd io.Reader) error {
				_, err := io.Copy(io.Discard, rd)
				return err
			})
		})
	}
	count := faulty.New(mem.New())
	if err := run(t.Context(), count); err != nil {
		t.Fatal(err)
	}
	if count.Ops() != 7 {
		t.Fatalf("the run did %d operations, want 7", count.Ops())
	}
	for n := 1; n <= count.Ops(); n++ {
		b := faulty.New(mem.New(), faulty.Fail(nil).Nth(n))
		if err := run(t.Context(), b); !errors.Is(err, faulty.ErrInjected) {
			t.Errorf("fault at operation %d: err = %v, want ErrInjected", n, err)
		}
		if u := b.Unfired(); len(u) > 0 {
			t.Errorf("faults never fired: %v", u)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		fault faulty.Fault
		want  string
	}{
		{faulty.Fail(nil), `fail with "injected fault" on put|get|stat|list|delete`},
		{faulty.Fail(syscall.ENOSPC).On(faulty.OpPut).Types(store.PackFile).Nth(3), `fail with "no space left on device" on put of [data] #3`},
		{faulty.Truncate(5).Fail(nil).From(2), `truncate to 5 bytes fail with "injected fault" on put #2..`},
		{faulty.FlipBit(7).On(faulty.OpGet).Prob(0.5, 9), `flip bit 7 on get with p=0.5 (seed 9)`},
		{faulty.Delay(time.Second).From(2).Times(3), `delay 1s on put|get|stat|list|delete #2..4`},
		{faulty.Fail(nil).Late().On(faulty.OpPut), `fail with "injected fault" late on put`},
		{faulty.FlipBit(-1).On(faulty.OpGet).Names("p1").Nth(1), `flip bit -1 on get named [p1] #1`},
	}
	for _, tt := range tests {
		if got := tt.fault.String(); got != tt.want {
			t.Errorf("String() = %s\n                want %s", got, tt.want)
		}
	}
}
