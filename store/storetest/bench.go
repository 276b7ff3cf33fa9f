package storetest

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/bk-backup/bk/store"
)

// Bench benchmarks the common operations of the backends newBackend returns:
// puts of small and pack-sized files, whole and ranged gets, stat and list.
// Every sub-benchmark gets a fresh backend and closes it when it ends.
func Bench(b *testing.B, newBackend func(b *testing.B) store.Backend) {
	const small, large = 4 << 10, 4 << 20
	benches := []struct {
		name string
		fn   func(b *testing.B, be store.Backend)
	}{
		{"Put/4KiB", func(b *testing.B, be store.Backend) { benchPut(b, be, small) }},
		{"Put/4MiB", func(b *testing.B, be store.Backend) { benchPut(b, be, large) }},
		{"Get/4MiB", func(b *testing.B, be store.Backend) { benchGet(b, be, large, 0, 0) }},
		{"GetRange/4KiB", func(b *testing.B, be store.Backend) { benchGet(b, be, large, large/2, small) }},
		{"Stat", benchStat},
		{"List/1000", benchList},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			be := newBackend(b)
			b.Cleanup(func() {
				if err := be.Close(); err != nil {
					b.Errorf("close %s: %v", be.Location(), err)
				}
			})
			bb.fn(b, be)
		})
	}
}

// benchHandle returns the i-th of a series of distinct pack handles.
func benchHandle(i int) store.Handle {
	return store.Handle{Type: store.PackFile, Name: fmt.Sprintf("%064x", i)}
}

func benchPut(b *testing.B, be store.Backend, size int) {
	data := newGen(b).bytes(size)
	rd := bytes.NewReader(data)
	b.SetBytes(int64(size))
	i := 0
	for b.Loop() {
		rd.Reset(data)
		if err := be.Put(b.Context(), benchHandle(i), rd, int64(size)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchGet(b *testing.B, be store.Backend, size int, off, length int64) {
	mustPut(b, be, benchHandle(0), newGen(b).bytes(size))
	n := length
	if n == 0 {
		n = int64(size) - off
	}
	b.SetBytes(n)
	for b.Loop() {
		err := be.Get(b.Context(), benchHandle(0), off, length, func(rd io.Reader) error {
			_, err := io.Copy(io.Discard, rd)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchStat(b *testing.B, be store.Backend) {
	mustPut(b, be, benchHandle(0), []byte("x"))
	for b.Loop() {
		if _, err := be.Stat(b.Context(), benchHandle(0)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchList(b *testing.B, be store.Backend) {
	for i := range 1000 {
		mustPut(b, be, benchHandle(i), []byte("x"))
	}
	for b.Loop() {
		n := 0
		err := be.List(b.Context(), store.PackFile, func(store.FileInfo) error { n++; return nil })
		if err != nil || n != 1000 {
			b.Fatalf("list: %d files, %v", n, err)
		}
	}
}
