package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/bk-backup/bk/bench/gen"
	"github.com/klauspost/compress/zstd"
)

// options are the command-line flags.
type options struct {
	size       int64
	seed       uint64
	dir        string
	keep       bool
	skipOthers bool
	jsonPath   string
	bkBin      string
	level      string
	sample     int64
	verify     bool
	edits      float64

	// Issue 3: nights, delta throughput, chains, base fetch, pgbench.
	nights                   bool
	night2Edits, night3Edits float64
	chain                    bool
	chainSize                int64
	chainNights, chainRounds int
	chainEdits               float64
	fetch                    bool
	fetchSamples             int
	pgbench                  bool
	pgConn                   string
	pgScale, pgTx, pgClients int
	pgCustom                 bool

	// Issue 5: retention, check and prune.
	retention                    bool
	retentionSize                int64
	retentionDays, retentionKeep int
	retentionEdits               float64

	// Dedup across days of real databases.
	days              bool
	daysSize          int64
	daysUpdate        float64
	daysEngines       string
	daysPG, daysMySQL string
	only              string

	// bk on a local S3 server beside a local repository.
	s3        bool
	s3Rounds  int
	s3Profile string
}

func main() {
	var o options
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	size := fs.String("size", "1GiB", "size of the generated dump (1GiB, 256MiB, 10GiB, ...)")
	sample := fs.String("sample", "1GiB", "at most this much of the dump is measured for component costs")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated data")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "parent of the work folder (bk-bench-*)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder: dumps and repositories")
	fs.BoolVar(&o.skipOthers, "skip-others", false, "do not run restic and borg")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.bkBin, "bk", "", "bk binary to test (default: go build ./cmd/bk)")
	fs.StringVar(&o.level, "level", "fastest", "zstd level bk writes with (fastest, default, better, best), for the ceiling")
	fs.Float64Var(&o.edits, "edits", gen.DefaultEditFraction, "fraction of rows the edited copy changes, inserts or deletes")
	fs.BoolVar(&o.verify, "verify", true, "after the timed runs, check that bk restores the edited copy byte for byte")
	fs.BoolVar(&o.nights, "nights", true, "snapshot three nights of the dump with bk, bk --no-delta, restic and borg")
	fs.Float64Var(&o.night2Edits, "night2-edits", 0.001, "fraction of rows of night 1 that night 2 edits")
	fs.Float64Var(&o.night3Edits, "night3-edits", 0.01, "fraction of rows of night 2 that night 3 edits")
	fs.BoolVar(&o.chain, "chain", true, "time restores at the maximum delta chain depth")
	chainSize := fs.String("chain-size", "256MiB", "size of the dump of the chain benchmark")
	fs.IntVar(&o.chainNights, "chain-nights", 9, "nights snapshotted for the chain benchmark (9 reaches depth 8)")
	fs.Float64Var(&o.chainEdits, "chain-edits", 0.005, "fraction of rows each night of the chain edits (enough that nearly every chunk changes every night)")
	fs.IntVar(&o.chainRounds, "chain-rounds", 3, "timed restores of night 1 and of the newest night (the median is kept)")
	fs.BoolVar(&o.fetch, "fetch", true, "time loading delta bases in this process, by chain depth")
	fs.IntVar(&o.fetchSamples, "fetch-samples", 100, "blobs loaded per chain depth for -fetch")
	fs.BoolVar(&o.pgbench, "pgbench", true, "two nights of a real PostgreSQL database changed by pgbench (skipped if unreachable)")
	fs.StringVar(&o.pgConn, "pg", "host=127.0.0.1 port=5432 user=postgres", "libpq connection string for -pgbench, without dbname")
	fs.IntVar(&o.pgScale, "pgbench-scale", 20, "pgbench -i -s scale (20: about 2M accounts)")
	fs.IntVar(&o.pgTx, "pgbench-tx", 20000, "pgbench -t: transactions per client between the two nights")
	fs.IntVar(&o.pgClients, "pgbench-clients", 2, "pgbench -c")
	fs.BoolVar(&o.pgCustom, "pgbench-custom", true, "also dump with pg_dump -Fc -Z0 and snapshot that with bk")
	fs.BoolVar(&o.retention, "retention", true, "time check, check --read-data, forget and prune on a repository of daily snapshots, with bk, restic and borg")
	retentionSize := fs.String("retention-size", "256MiB", "size of day 1 of the retention benchmark (equal to -size: the run's dump; 256MiB keeps 30 days of 3 tools to a few minutes)")
	fs.IntVar(&o.retentionDays, "retention-days", 30, "daily snapshots in the retention repositories")
	fs.IntVar(&o.retentionKeep, "retention-keep", 10, "forget --keep-daily N of the retention benchmark")
	fs.Float64Var(&o.retentionEdits, "retention-edits", 0.01, "fraction of rows each day of the retention benchmark edits")
	fs.BoolVar(&o.days, "days", true, "two nights of a real PostgreSQL, MariaDB and SQLite table with 1% of rows updated, with bk (engine URL), restic and borg (servers not reachable are skipped)")
	daysSize := fs.String("days-size", "200MiB", "about the dump size of each database of -days")
	fs.Float64Var(&o.daysUpdate, "days-update", 0.01, "fraction of rows -days updates at random between the two nights")
	fs.StringVar(&o.daysEngines, "days-engines", "postgres,mysql,sqlite", "engines of -days, comma-separated")
	fs.StringVar(&o.daysPG, "days-pg", "postgres://postgres@127.0.0.1:5432", "PostgreSQL server of -days, a bk source URL without database or password")
	fs.StringVar(&o.daysMySQL, "days-mysql", "mysql://root@127.0.0.1:3306", "MariaDB server of -days, a bk source URL without database or password")
	fs.StringVar(&o.only, "only", "", "run only this section, which needs no generated dump: days, pgbench, retention or s3 (which generates -size)")
	fs.BoolVar(&o.s3, "s3", true, "bk on a local versitygw S3 server beside a local repository (skipped without versitygw)")
	fs.IntVar(&o.s3Rounds, "s3-rounds", 3, "fresh repositories, restores and listings of -s3 (the median is kept)")
	fs.StringVar(&o.s3Profile, "s3-cpuprofile", "", "folder for bk's CPU profiles of the last round's night 1 of -s3, local and S3")
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	var err error
	if o.size, err = parseSize(*size); err == nil {
		o.sample, err = parseSize(*sample)
	}
	if err == nil {
		o.chainSize, err = parseSize(*chainSize)
	}
	if err == nil {
		o.retentionSize, err = parseSize(*retentionSize)
	}
	if err == nil {
		o.daysSize, err = parseSize(*daysSize)
	}
	if err == nil {
		err = daysEngineList(o.daysEngines)
	}
	if err == nil && o.only != "" && o.only != "days" && o.only != "pgbench" && o.only != "retention" && o.only != "s3" {
		err = fmt.Errorf("-only %q: want days, pgbench, retention or s3", o.only)
	}
	if err == nil && o.s3Rounds < 1 {
		err = errors.New("-s3-rounds must be at least 1")
	}
	if err == nil && (o.retentionKeep < 1 || o.retentionDays <= o.retentionKeep) {
		err = errors.New("-retention-keep must be at least 1 and below -retention-days")
	}
	if err == nil && (o.chainNights < 2 || o.chainRounds < 1 || o.fetchSamples < 1 || o.pgScale < 1 || o.pgTx < 1 || o.pgClients < 1) {
		err = errors.New("-chain-nights must be at least 2, and -chain-rounds, -fetch-samples and the pgbench numbers at least 1")
	}
	for _, f := range []float64{o.night2Edits, o.night3Edits, o.chainEdits, o.retentionEdits, o.daysUpdate} {
		if err == nil && !(f >= 0 && f <= 1) {
			err = fmt.Errorf("edit fraction %v is not in [0, 1]", f)
		}
	}
	if err != nil || o.size <= 0 || o.chainSize <= 0 || o.retentionSize <= 0 || o.daysSize <= 0 || fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: bad arguments: %v %q\n", err, fs.Args())
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = benchmark(ctx, o, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchmark is the whole benchmark. Results go to out, progress to progress. It
// fails only when something does not work, never on a missed target.
func benchmark(ctx context.Context, o options, out, progress io.Writer) (err error) {
	level, ok := map[string]zstd.EncoderLevel{"fastest": zstd.SpeedFastest, "default": zstd.SpeedDefault,
		"better": zstd.SpeedBetterCompression, "best": zstd.SpeedBestCompression}[o.level]
	if !ok {
		return fmt.Errorf("unknown zstd level %q", o.level)
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	work, err := os.MkdirTemp(o.dir, "bk-bench-")
	if err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	if o.keep {
		defer fmt.Fprintf(out, "\nwork folder kept: %s\n", work)
	} else {
		defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	}
	r := &report{Size: o.size, Seed: o.seed, Dir: work,
		Platform: fmt.Sprintf("%s %s/%s, %d CPUs", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())}
	if o.only != "" {
		return benchmarkOnly(ctx, o, r, out, progress)
	}
	fmt.Fprintf(out, "bk bench: %s dump, seed %d, %s\nwork folder %s\n", formatSize(o.size), o.seed, r.Platform, work)
	if la := loadAverage(); la != "" {
		fmt.Fprintf(out, "load average at start: %s (other processes on these CPUs make wall-clock figures noisy)\n", la)
	}

	orig, edited := filepath.Join(work, "dump.sql"), filepath.Join(work, "edited.sql")
	fmt.Fprintf(progress, "bench: generating %s\n", formatSize(o.size))
	start := time.Now()
	if r.Data, err = generate(orig, edited, gen.Config{Size: o.size, Seed: o.seed, EditFraction: o.edits}); err != nil {
		return err
	}
	r.GenSeconds = time.Since(start).Seconds()
	printData(out, r)

	fmt.Fprintf(progress, "bench: measuring component costs\n")
	sample, err := loadSample(orig, o.sample)
	if err != nil {
		return err
	}
	c, err := measureCosts(sample, level)
	if err != nil {
		return fmt.Errorf("component costs: %w", err)
	}
	r.Costs = &c
	debug.FreeOSMemory() // the sample is garbage now; children's peak RSS starts from ours

	printCosts(out, r.Costs)
	r.IndexBytesPerBlob = indexBytesPerBlob(1 << 20)
	fmt.Fprintf(out, "in-memory index: %.1f bytes per blob (1,048,576 synthetic blobs in packs of 1000)\n", r.IndexBytesPerBlob)
	debug.FreeOSMemory()
	if rss := selfRSS(); rss > 64<<20 {
		r.Notices = append(r.Notices, fmt.Sprintf("peak RSS of children is at least the benchmark's own RSS, %s", formatSize(rss)))
	}

	tools, notices := findTools(ctx, o, work, progress)
	r.Notices = append(r.Notices, notices...)
	var bkErr error
	for _, t := range tools {
		res := t.runAll(ctx, orig, edited, progress)
		if res.Error == "" && t.Name == "bk" && o.verify {
			fmt.Fprintf(progress, "bench: bk verify restore\n")
			if err := t.verifyRestore(ctx, edited); err != nil {
				res.Error = err.Error()
			} else {
				r.Notices = append(r.Notices, "bk restored the edited copy byte for byte (SHA-256 checked, untimed)")
			}
		}
		if res.Error != "" {
			r.Notices = append(r.Notices, fmt.Sprintf("%s failed: %s", t.Name, res.Error))
			if t.Name == "bk" {
				bkErr = fmt.Errorf("bk failed: %s", firstLine(res.Error))
			}
		}
		r.Tools = append(r.Tools, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	printRuns(out, r)
	compare(out, r)

	if err := moreSections(ctx, o, work, orig, tools, r, progress); err != nil {
		bkErr = errors.Join(bkErr, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	printNights(out, r.Nights)
	printChain(out, r.Chain)
	printFetch(out, r.Fetch)
	printPG(out, r.PG)
	printRetention(out, r.Retention)
	printDays(out, r.Days)
	printS3(out, r.S3)

	if la := loadAverage(); la != "" {
		r.Notices = append(r.Notices, "load average at the end: "+la)
	}
	evaluate(r)
	evaluateNights(r)
	evaluateChain(r)
	evaluatePG(r)
	evaluateRetention(r)
	evaluateS3(r)
	printTargets(out, r)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, r); err != nil {
			return err
		}
	}
	return bkErr
}

// benchmarkOnly runs the one section o.only, which needs no generated dump,
// in the work folder r.Dir.
func benchmarkOnly(ctx context.Context, o options, r *report, out, progress io.Writer) error {
	fmt.Fprintf(out, "bk bench -only %s: %s\nwork folder %s\n", o.only, r.Platform, r.Dir)
	if la := loadAverage(); la != "" {
		fmt.Fprintf(out, "load average at start: %s (other processes on these CPUs make wall-clock figures noisy)\n", la)
	}
	tools, notices := findTools(ctx, o, r.Dir, progress)
	r.Notices = append(r.Notices, notices...)
	for _, t := range tools {
		v := t.Version
		if v == "" {
			v = t.Name
		}
		fmt.Fprintf(out, "%-7s %s: %s\n", t.Name, v, t.Settings)
	}
	var err error
	if !hasTool(tools, "bk") {
		err = errors.New("no bk binary")
	} else {
		switch o.only {
		case "days":
			err = runDays(ctx, o, r, tools, progress)
			printDays(out, r.Days)
		case "pgbench":
			err = runPGBench(ctx, o, r, tools, progress)
			printPG(out, r.PG)
			evaluatePG(r)
		case "retention":
			// No run dump: day 1 is generated at -retention-size.
			r.Retention = benchRetention(ctx, o, r.Dir, "", tools, progress)
			printRetention(out, r.Retention)
			evaluateRetention(r)
			if rr := r.Retention; rr.Error != "" {
				err = errors.New("retention: " + rr.Error)
			}
		case "s3":
			// No run dump: night 1 is generated at -size.
			err = runS3(ctx, o, r, "", tools, progress)
			printS3(out, r.S3)
			evaluateS3(r)
		}
	}
	if la := loadAverage(); la != "" {
		r.Notices = append(r.Notices, "load average at the end: "+la)
	}
	printTargets(out, r)
	if o.jsonPath != "" {
		err = errors.Join(err, writeJSON(o.jsonPath, r))
	}
	return err
}

// generate writes the dump and its edited copy. Each file is written by its
// own goroutine, so generating and writing overlap on two cores.
func generate(orig, edited string, cfg gen.Config) (gen.Stats, error) {
	fo, err := newAsyncFile(orig)
	if err != nil {
		return gen.Stats{}, err
	}
	fe, err := newAsyncFile(edited)
	if err != nil {
		return gen.Stats{}, errors.Join(err, fo.Close())
	}
	st, err := gen.Generate(fo, fe, cfg)
	return st, errors.Join(err, fo.Close(), fe.Close())
}

// asyncFile is a file written by a background goroutine. Write copies p
// and returns at once; Close returns the first write error. It is not safe
// for concurrent use, and Close must be called exactly once.
type asyncFile struct {
	f    *os.File
	work chan []byte
	free chan []byte
	done chan error // the goroutine's result, after work is closed
}

func newAsyncFile(path string) (*asyncFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	a := &asyncFile{f: f, work: make(chan []byte, 4), free: make(chan []byte, 5), done: make(chan error, 1)}
	for i := 0; i < cap(a.free); i++ {
		a.free <- nil
	}
	go func() {
		var err error
		for b := range a.work {
			if err == nil {
				_, err = f.Write(b)
			}
			a.free <- b[:0]
		}
		a.done <- errors.Join(err, f.Close())
	}()
	return a, nil
}

func (a *asyncFile) Write(p []byte) (int, error) {
	a.work <- append(<-a.free, p...)
	return len(p), nil
}

// Close waits for the pending writes and closes the file.
func (a *asyncFile) Close() error {
	close(a.work)
	return <-a.done
}

// findTools builds bk and looks for restic and borg on PATH.
func findTools(ctx context.Context, o options, work string, progress io.Writer) ([]*tool, []string) {
	var tools []*tool
	var notices []string
	if bin, err := buildBK(ctx, o.bkBin, work, progress); err != nil {
		notices = append(notices, "bk end-to-end runs skipped: "+err.Error())
		fmt.Fprintf(progress, "bench: %s\n", notices[len(notices)-1])
	} else {
		t := newBK(bin, work, o.level)
		t.version(ctx, "version")
		tools = append(tools, t)
	}
	if o.skipOthers {
		return tools, append(notices, "restic and borg skipped (-skip-others)")
	}
	for _, name := range []string{"restic", "borg"} {
		bin, err := exec.LookPath(name)
		if err != nil {
			notices = append(notices, name+" not on PATH; skipped (apt-get install restic borgbackup)")
			fmt.Fprintf(progress, "bench: %s\n", notices[len(notices)-1])
			continue
		}
		if name == "restic" {
			t := newRestic(bin, work)
			t.version(ctx, "version")
			tools = append(tools, t)
		} else {
			t := newBorg(bin, work, o.level)
			t.version(ctx, "--version")
			tools = append(tools, t)
		}
	}
	return tools, notices
}

// buildBK returns the bk binary: bin if given, else one built from the
// module's cmd/bk.
func buildBK(ctx context.Context, bin, work string, progress io.Writer) (string, error) {
	if bin != "" {
		return filepath.Abs(bin)
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("not inside the bk module (go env GOMOD: %v)", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if _, err := os.Stat(filepath.Join(root, "cmd", "bk")); err != nil {
		return "", fmt.Errorf("no cmd/bk in %s", root)
	}
	fmt.Fprintf(progress, "bench: building bk\n")
	bin = filepath.Join(work, "bk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/bk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bk: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
