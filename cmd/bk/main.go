// Command bk is a backup engine for databases: it stores dumps in an
// encrypted, deduplicating repository and restores them byte for byte.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/engines/command"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, documented in README.md. Scripts rely on them.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitSource    = 3 // the source failed: command exited non-zero, was killed, or the stream was empty
	exitNoRepo    = 10
	exitLocked    = 11
	exitBadPass   = 12
	exitNewerRepo = 13
)

// memoryLimit is the soft heap limit bk sets unless GOMEMLIMIT is given: the
// pipeline's working set is about 100 MiB, and the limit keeps the garbage
// collector from letting the heap double beyond that.
const memoryLimit = 224 << 20

func main() {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("BK_CPUPROFILE"))
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile to path, for developers measuring bk
// (BK_CPUPROFILE=cpu.prof). An empty path does nothing.
func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bk: cpu profile: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run executes one bk invocation and returns its exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintf(stderr, "bk: %s\n", oneLine(err.Error()))
	if code == exitUsage {
		fmt.Fprintln(stderr, "Run 'bk --help' for usage.")
	}
	return code
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var ue usageError
	var xe *command.ExitError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, store.ErrNotFound) && errors.Is(err, errNoRepo):
		return exitNoRepo
	case errors.Is(err, crypt.ErrWrongPassword):
		return exitBadPass
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, repo.ErrNewerFormat):
		return exitNewerRepo
	case errors.As(err, &xe), errors.Is(err, repo.ErrEmpty), errors.Is(err, repo.ErrShrunk), errors.Is(err, errSource):
		return exitSource
	}
	return exitFailure
}

var (
	errNoRepo = errors.New("no repository")
	errSource = errors.New("source failed")
)

// oneLine folds an error message onto one line.
func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
