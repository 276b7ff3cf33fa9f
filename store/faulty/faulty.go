package faulty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bk-backup/bk/store"
)

// ErrInjected matches every error a fault injects.
var ErrInjected = errors.New("injected fault")

// Op is a set of backend operations.
type Op uint8

// The operations, and the sets a fault commonly selects.
const (
	OpPut Op = 1 << iota
	OpGet
	OpStat
	OpList
	OpDelete

	Writes = OpPut | OpDelete
	Reads  = OpGet | OpStat | OpList
	AllOps = Writes | Reads
)

// String returns the names of the operations in o, joined by "|".
func (o Op) String() string {
	var names []string
	for i, name := range []string{"put", "get", "stat", "list", "delete"} {
		if o&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

type action uint8

const (
	actNone action = iota
	actTruncate
	actFlip
)

// Fault is one planned fault: an action, made by Fail, Delay, Truncate or
// FlipBit, and the selectors that say when it fires. The methods return a
// modified copy, so a Fault can be reused as a template. The zero Fault
// never fires.
type Fault struct {
	ops    Op               // the operations it selects
	can    Op               // the operations its action applies to
	types  []store.FileType // empty: all
	names  []string         // empty: all
	from   int              // the first selected operation it fires on, 1-based
	times  int              // the most times it fires; 0: no limit
	random bool             // fire with probability prob
	prob   float64
	seed   uint64

	err   error
	late  bool // report err after the operation took effect
	delay time.Duration
	act   action
	arg   int64 // bytes kept by Truncate, bit flipped by FlipBit
}

// Fail returns a fault that makes every operation return an error wrapping
// err (ErrInjected if err is nil) without running it.
func Fail(err error) Fault {
	return Fault{ops: AllOps, can: AllOps, from: 1}.Fail(err)
}

// Delay returns a fault that makes every operation wait d (or until its
// context is done) before it runs.
func Delay(d time.Duration) Fault {
	return Fault{ops: AllOps, can: AllOps, from: 1, delay: d}
}

// Truncate returns a fault that makes every put store only the first keep
// bytes of its data and report success. Add Fail to report an error after
// storing the truncated file.
func Truncate(keep int64) Fault {
	return Fault{ops: OpPut, can: OpPut, from: 1, act: actTruncate, arg: max(keep, 0)}
}

// FlipBit returns a fault that inverts one bit of the data of every put (as
// stored) and get (as returned). Bit 0 is the lowest bit of the first byte;
// bit is taken modulo the number of bits of the data, and empty data stays
// as it is.
func FlipBit(bit int64) Fault {
	return Fault{ops: OpPut | OpGet, can: OpPut | OpGet, from: 1, act: actFlip, arg: bit}
}

// On limits the fault to the operations in ops. Operations the fault's
// action does not apply to (a get for Truncate) are never selected.
func (f Fault) On(ops Op) Fault {
	f.ops = ops & f.can
	return f
}

// Types limits the fault to files of the given types.
func (f Fault) Types(types ...store.FileType) Fault {
	f.types = slices.Clone(types)
	return f
}

// Names limits the fault to files with the given names (a List has no
// name, so it is never selected).
func (f Fault) Names(names ...string) Fault {
	f.names = slices.Clone(names)
	return f
}

// Nth makes the fault fire only on the nth (from 1) operation it selects.
func (f Fault) Nth(n int) Fault {
	f.from, f.times = n, 1
	return f
}

// From makes the fault fire on the nth (from 1) operation it selects and on
// every one after it.
func (f Fault) From(n int) Fault {
	f.from = n
	return f
}

// Times makes the fault fire at most n times.
func (f Fault) Times(n int) Fault {
	f.times = n
	return f
}

// Prob makes the fault fire on each operation it selects with probability
// p, drawn from a generator seeded with seed, so the same sequence of
// operations sees the same faults.
func (f Fault) Prob(p float64, seed uint64) Fault {
	f.random, f.prob, f.seed = true, p, seed
	return f
}

// Fail makes the fault also return an error wrapping err (ErrInjected if
// err is nil). A fault with a data action (Truncate, FlipBit) runs the
// operation first; otherwise the operation does not run, unless Late is set.
func (f Fault) Fail(err error) Fault {
	if err == nil {
		err = ErrInjected
	}
	f.err = err
	return f
}

// Late makes a failing fault run the operation and then report its error,
// as when the reply to a successful request is lost.
func (f Fault) Late() Fault {
	f.late = true
	return f
}

// Delay makes the fault also wait d before the operation runs.
func (f Fault) Delay(d time.Duration) Fault {
	f.delay = d
	return f
}

// String describes the fault.
func (f Fault) String() string {
	var parts []string
	switch f.act {
	case actTruncate:
		parts = append(parts, fmt.Sprintf("truncate to %d bytes", f.arg))
	case actFlip:
		parts = append(parts, fmt.Sprintf("flip bit %d", f.arg))
	}
	if f.delay > 0 {
		parts = append(parts, fmt.Sprintf("delay %v", f.delay))
	}
	if f.err != nil {
		s := fmt.Sprintf("fail with %q", f.err)
		if f.late {
			s += " late"
		}
		parts = append(parts, s)
	}
	parts = append(parts, "on "+f.ops.String())
	if len(f.types) > 0 {
		parts = append(parts, fmt.Sprintf("of %v", f.types))
	}
	if len(f.names) > 0 {
		parts = append(parts, fmt.Sprintf("named %v", f.names))
	}
	switch {
	case f.times == 1:
		parts = append(parts, fmt.Sprintf("#%d", f.from))
	case f.times > 1:
		parts = append(parts, fmt.Sprintf("#%d..%d", f.from, f.from+f.times-1))
	case f.from > 1:
		parts = append(parts, fmt.Sprintf("#%d..", f.from))
	}
	if f.random {
		parts = append(parts, fmt.Sprintf("with p=%g (seed %d)", f.prob, f.seed))
	}
	return strings.Join(parts, " ")
}

// fails reports whether the fault's error keeps the operation from running.
func (f Fault) fails() bool { return f.err != nil && !f.late && f.act == actNone }

// fault is a planned fault and its state.
type fault struct {
	Fault
	selected, fired int
	rng             *rand.Rand
}

type opKey struct {
	op Op
	t  store.FileType
}

// Backend wraps a store.Backend and injects faults into its operations. It
// is safe for concurrent use; a fault then fires on whichever operation
// reaches it first.
type Backend struct {
	inner store.Backend

	mu     sync.Mutex
	faults []*fault
	counts map[opKey]int
	ops    int
	fired  int
}

var _ store.Backend = (*Backend)(nil)

// New returns a backend that passes every operation to inner, injecting
// faults as planned.
func New(inner store.Backend, faults ...Fault) *Backend {
	b := &Backend{inner: inner, counts: make(map[opKey]int)}
	for _, f := range faults {
		b.faults = append(b.faults, &fault{Fault: f, rng: rand.New(rand.NewPCG(f.seed, 0x6661756c7479))})
	}
	return b
}

// Ops returns how many operations have passed through b, faulted or not.
func (b *Backend) Ops() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ops
}

// Count returns how many of the operations in ops on files of the given
// types (all types if none) have passed through b.
func (b *Backend) Count(ops Op, types ...store.FileType) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k, c := range b.counts {
		if ops&k.op != 0 && (len(types) == 0 || slices.Contains(types, k.t)) {
			n += c
		}
	}
	return n
}

// Fired returns how many times faults have fired.
func (b *Backend) Fired() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fired
}

// Unfired returns the planned faults that have not fired yet.
func (b *Backend) Unfired() []Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	var unfired []Fault
	for _, f := range b.faults {
		if f.fired == 0 {
			unfired = append(unfired, f.Fault)
		}
	}
	return unfired
}

// plan counts the operation and returns the faults that fire on it.
func (b *Backend) plan(op Op, t store.FileType, name string) []Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops++
	b.counts[opKey{op, t}]++
	var fire []Fault
	for _, f := range b.faults {
		if f.ops&op == 0 || (len(f.types) > 0 && !slices.Contains(f.types, t)) ||
			(len(f.names) > 0 && !slices.Contains(f.names, name)) {
			continue
		}
		f.selected++
		if f.selected < f.from || (f.times > 0 && f.fired >= f.times) ||
			(f.random && f.rng.Float64() >= f.prob) {
			continue
		}
		f.fired++
		b.fired++
		fire = append(fire, f.Fault)
	}
	return fire
}

// do runs one operation under the faults that fire on it: it waits their
// delays, fails early, or runs the operation (with their data actions) and
// then reports a late error.
func (b *Backend) do(ctx context.Context, op Op, h store.Handle, what string, run func(data []Fault) error) error {
	var (
		delay       time.Duration
		early, late error
		data        []Fault
	)
	for _, f := range b.plan(op, h.Type, h.Name) {
		delay += f.delay
		switch {
		case f.fails():
			early = first(early, f.err)
		case f.err != nil:
			late = first(late, f.err)
		}
		if f.act != actNone {
			data = append(data, f)
		}
	}
	if err := sleep(ctx, delay); err != nil {
		return fmt.Errorf("%s %s: %w", op, what, err)
	}
	if early != nil {
		return injected(op, what, early)
	}
	if err := run(data); err != nil {
		return err
	}
	if late != nil {
		return injected(op, what, late)
	}
	return nil
}

// first returns the first non-nil error.
func first(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func injected(op Op, what string, err error) error {
	if errors.Is(err, ErrInjected) {
		return fmt.Errorf("%s %s: %w", op, what, err)
	}
	return fmt.Errorf("%s %s: %w (%w)", op, what, err, ErrInjected)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apply runs the data actions of faults on data and returns the result.
func apply(faults []Fault, data []byte) []byte {
	for _, f := range faults {
		switch {
		case f.act == actTruncate:
			data = data[:min(int64(len(data)), f.arg)]
		case f.act == actFlip && len(data) > 0:
			bits := int64(len(data)) * 8
			i := (f.arg%bits + bits) % bits
			data[i/8] ^= 1 << (i % 8)
		}
	}
	return data
}

// Location returns the inner backend's location, marked as faulty.
func (b *Backend) Location() string { return "faulty:" + b.inner.Location() }

// Put stores the file through the inner backend.
func (b *Backend) Put(ctx context.Context, h store.Handle, rd io.ReadSeeker, size int64) error {
	return b.do(ctx, OpPut, h, h.String(), func(faults []Fault) error {
		if len(faults) == 0 {
			return b.inner.Put(ctx, h, rd, size)
		}
		data, err := io.ReadAll(io.LimitReader(rd, size+1))
		if err != nil {
			return fmt.Errorf("put %s: %w", h, err)
		}
		n := len(data)
		if data = apply(faults, data); len(data) != n {
			size = int64(len(data)) // a truncation; a wrong size stays wrong
		}
		return b.inner.Put(ctx, h, bytes.NewReader(data), size)
	})
}

// Get reads the file through the inner backend.
func (b *Backend) Get(ctx context.Context, h store.Handle, off, length int64, fn func(io.Reader) error) error {
	return b.do(ctx, OpGet, h, h.String(), func(faults []Fault) error {
		if len(faults) == 0 {
			return b.inner.Get(ctx, h, off, length, fn)
		}
		return b.inner.Get(ctx, h, off, length, func(rd io.Reader) error {
			data, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			return fn(bytes.NewReader(apply(faults, data)))
		})
	})
}

// Stat asks the inner backend.
func (b *Backend) Stat(ctx context.Context, h store.Handle) (fi store.FileInfo, err error) {
	err = b.do(ctx, OpStat, h, h.String(), func([]Fault) error {
		fi, err = b.inner.Stat(ctx, h)
		return err
	})
	return fi, err
}

// List lists through the inner backend. A fault fires once per List, not
// per file.
func (b *Backend) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	return b.do(ctx, OpList, store.Handle{Type: t}, string(t), func([]Fault) error {
		return b.inner.List(ctx, t, fn)
	})
}

// Delete deletes through the inner backend.
func (b *Backend) Delete(ctx context.Context, h store.Handle) error {
	return b.do(ctx, OpDelete, h, h.String(), func([]Fault) error {
		return b.inner.Delete(ctx, h)
	})
}

// Close closes the inner backend; it is not an operation faults select.
func (b *Backend) Close() error { return b.inner.Close() }
