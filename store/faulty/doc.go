// Package faulty is a store.Backend wrapper that injects faults, for tests.
//
// A Fault pairs an action with selectors. The actions are Fail (return an
// error such as syscall.ENOSPC instead of running the operation), Delay,
// Truncate (store only a prefix of a put's data) and FlipBit (corrupt the
// data of a put or a get). The selectors narrow which operations the fault
// applies to: the kind of operation (On, with masks such as Writes), the file
// type (Types) and name (Names), the position among the selected operations (Nth, From,
// Times) and chance (Prob, seeded, so a run is reproducible). Selectors
// compose; each returns a modified copy of the fault:
//
//	b := faulty.New(mem.New(),
//		faulty.Fail(syscall.ENOSPC).On(faulty.OpPut).Types(store.PackFile).Nth(3),
//		faulty.Delay(10*time.Millisecond).On(faulty.Reads),
//	)
//
// Every injected error matches ErrInjected and the error the fault was given.
//
// To test every failure point of a piece of code, run it once on a wrapper
// without faults and read Ops (or Count); then run it again for each n from
// 1 to that count with Fail(nil).Nth(n), and check that the code reports
// the error and that Unfired is empty, which proves the fault was reached.
package faulty
