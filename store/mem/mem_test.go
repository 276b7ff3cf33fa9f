package mem_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
	"github.com/bk-backup/bk/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Backend { return mem.New() })
}

func BenchmarkBackend(b *testing.B) {
	storetest.Bench(b, func(*testing.B) store.Backend { return mem.New() })
}

// TestCopies checks that neither the caller's buffers nor a reader's
// internals alias the stored bytes.
func TestCopies(t *testing.T) {
	b := mem.New()
	h := store.Handle{Type: store.KeyFile, Name: "k1"}
	data := []byte("secret")
	if err := b.Put(t.Context(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X'
	// A bytes.Reader's WriteTo hands its own slice to the writer; a writer
	// that breaks the io.Writer contract keeps it and scribbles on it.
	var k keeper
	err := b.Get(t.Context(), h, 0, 0, func(rd io.Reader) error {
		_, err := rd.(io.WriterTo).WriteTo(&k)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range k.p {
		k.p[i] = 'Z'
	}
	got, err := store.ReadAll(t.Context(), b, h)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "secret" {
		t.Errorf("stored data changed to %q", got)
	}
}

// keeper keeps the last slice it is given.
type keeper struct{ p []byte }

func (k *keeper) Write(p []byte) (int, error) {
	k.p = p
	return len(p), nil
}
