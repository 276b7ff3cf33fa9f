package faulty_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/faulty"
	"github.com/bk-backup/bk/store/mem"
)

func Example() {
	b := faulty.New(mem.New(),
		faulty.Fail(syscall.ENOSPC).On(faulty.OpPut).Types(store.PackFile).Nth(2),
		faulty.Fail(nil).On(faulty.OpDelete),
	)
	for _, name := range []string{"p1", "p2", "p3"} {
		h := store.Handle{Type: store.PackFile, Name: name}
		fmt.Println(b.Put(context.Background(), h, strings.NewReader("data"), 4))
	}
	fmt.Println(b.Ops(), "operations; unfired:", b.Unfired())
	// Output:
	// <nil>
	// put data/p2: no space left on device (injected fault)
	// <nil>
	// 3 operations; unfired: [fail with "injected fault" on delete]
}
