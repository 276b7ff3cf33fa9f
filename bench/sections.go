package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/bk-backup/bk/repo"
)

// moreSections runs the benchmarks of delta storage after the four runs:
// nights, the chain, pgbench, retention (check, forget and prune), days, s3, then (in this process, last, so that its
// memory does not count in the children's peak RSS) the chain depths and
// the base fetch. Results go into r; a failure of bk is returned, those of
// other tools become notices.
func moreSections(ctx context.Context, o options, work, orig string, tools []*tool, r *report, progress io.Writer) error {
	var bk *tool
	for _, t := range tools {
		if t.Name == "bk" {
			bk = t
		}
	}
	if bk == nil {
		if o.nights || o.chain || o.fetch || o.pgbench || o.retention || o.days || o.s3 {
			r.Notices = append(r.Notices, "nights, chain, base fetch, pgbench, retention, days and s3 skipped: no bk binary")
		}
		return nil
	}
	var errs []error
	bkFailed := func(section string, err error) {
		r.Notices = append(r.Notices, fmt.Sprintf("%s: %v", section, err))
		errs = append(errs, fmt.Errorf("%s: %s", section, firstLine(err.Error())))
	}
	fromResults := func(section string, results []*toolResult) {
		for _, t := range results {
			if t.Error == "" {
				continue
			}
			if strings.HasPrefix(t.Name, "bk") {
				bkFailed(section+", "+t.Name, errors.New(t.Error))
			} else {
				r.Notices = append(r.Notices, fmt.Sprintf("%s, %s failed: %s", section, t.Name, t.Error))
			}
		}
	}

	if o.nights {
		nr, err := benchNights(ctx, o, work, orig, tools, progress)
		r.Nights = nr
		if err != nil {
			bkFailed("nights", err)
		}
		if nr != nil {
			fromResults("nights", nr.Tools)
		}
	}
	if o.chain && ctx.Err() == nil {
		r.Chain = benchChain(ctx, o, work, bk, progress)
		if r.Chain.Error != "" {
			bkFailed("chain", errors.New(r.Chain.Error))
		}
	}
	if o.pgbench && ctx.Err() == nil {
		if err := runPGBench(ctx, o, r, tools, progress); err != nil {
			errs = append(errs, err)
		}
	}
	if o.retention && ctx.Err() == nil {
		r.Retention = benchRetention(ctx, o, work, orig, tools, progress)
		if r.Retention.Error != "" {
			bkFailed("retention", errors.New(r.Retention.Error))
		}
		for _, t := range r.Retention.Tools {
			if t.Error != "" && t.Name != "bk" {
				r.Notices = append(r.Notices, fmt.Sprintf("retention, %s failed: %s", t.Name, t.Error))
			}
		}
	}
	if o.days && ctx.Err() == nil {
		if err := runDays(ctx, o, r, tools, progress); err != nil {
			errs = append(errs, err)
		}
	}
	if o.s3 && ctx.Err() == nil {
		if err := runS3(ctx, o, r, orig, tools, progress); err != nil {
			errs = append(errs, err)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// In this process: what each night added, the chain depths and the base
	// fetch (on the chain repository, else the nights' one).
	withRepo := func(dir string, fn func(rp *repo.Repository, path string) error) {
		path := filepath.Join(work, dir)
		fmt.Fprintf(progress, "bench: opening %s in this process\n", dir)
		rp, err := openRepo(ctx, path)
		if err != nil {
			bkFailed("open "+dir, err)
			return
		}
		defer func() {
			rp.Close()
			debug.FreeOSMemory()
		}()
		if err := fn(rp, path); err != nil {
			bkFailed(dir, err)
		}
	}
	fetch := func(rp *repo.Repository, path string) error {
		if !o.fetch {
			return nil
		}
		fmt.Fprintf(progress, "bench: base fetch\n")
		var err error
		if r.Fetch, err = benchFetch(ctx, rp, path, o.fetchSamples, o.seed); err != nil {
			if r.Fetch == nil {
				r.Fetch = &fetchResult{}
			}
			r.Fetch.Error = err.Error()
			return fmt.Errorf("base fetch: %w", err)
		}
		return nil
	}
	chainOK := r.Chain != nil && r.Chain.Error == ""
	if r.Nights != nil && r.Nights.tool("bk") != nil {
		withRepo("repo-bk-nights", func(rp *repo.Repository, path string) error {
			if err := r.Nights.nightsAdded(ctx, rp); err != nil {
				return fmt.Errorf("what each night added: %w", err)
			}
			if !chainOK {
				return fetch(rp, path)
			}
			return nil
		})
	}
	if chainOK {
		withRepo("repo-bk-chain", func(rp *repo.Repository, path string) error {
			if err := r.Chain.chainDepths(ctx, rp); err != nil {
				r.Chain.DepthErr = err.Error()
				return fmt.Errorf("chain depths: %w", err)
			}
			return fetch(rp, path)
		})
	}
	return errors.Join(errs...)
}

// runPGBench runs the pgbench section into r.PG. A failure of bk is
// returned; other failures become notices.
func runPGBench(ctx context.Context, o options, r *report, tools []*tool, progress io.Writer) error {
	r.PG = benchPG(ctx, o, r.Dir, tools, progress)
	if r.PG.Skipped != "" {
		r.Notices = append(r.Notices, "pgbench skipped: "+r.PG.Skipped)
	}
	var errs []error
	for _, t := range r.PG.Tools {
		if t.Error == "" {
			continue
		}
		if strings.HasPrefix(t.Name, "bk") {
			errs = append(errs, fmt.Errorf("pgbench, %s: %s", t.Name, firstLine(t.Error)))
		}
		r.Notices = append(r.Notices, fmt.Sprintf("pgbench, %s failed: %s", t.Name, t.Error))
	}
	if r.PG.Error != "" && len(r.PG.Tools) == 0 {
		r.Notices = append(r.Notices, "pgbench failed: "+r.PG.Error)
	}
	return errors.Join(errs...)
}

// runDays runs the dedup-across-days section into r.Days. An engine whose
// server is unreachable is skipped with a notice; a failure of bk is
// returned, other failures become notices.
func runDays(ctx context.Context, o options, r *report, tools []*tool, progress io.Writer) error {
	r.Days = benchDays(ctx, o, r.Dir, tools, progress)
	var errs []error
	for _, d := range r.Days.Engines {
		if d.Skipped != "" {
			r.Notices = append(r.Notices, fmt.Sprintf("days, %s skipped: %s", d.Engine, d.Skipped))
			continue
		}
		bkFailed := false
		for _, t := range d.Tools {
			if t.Error == "" {
				continue
			}
			r.Notices = append(r.Notices, fmt.Sprintf("days, %s, %s failed: %s", d.Engine, t.Name, t.Error))
			if t.Name == "bk" {
				bkFailed = true
				errs = append(errs, fmt.Errorf("days, %s, bk: %s", d.Engine, firstLine(t.Error)))
			}
		}
		if d.Error != "" && !bkFailed {
			r.Notices = append(r.Notices, fmt.Sprintf("days, %s failed: %s", d.Engine, d.Error))
		}
	}
	return errors.Join(errs...)
}

func hasTool(tools []*tool, name string) bool {
	for _, t := range tools {
		if t.Name == name {
			return true
		}
	}
	return false
}

// bkRuns returns every run of bk in the report, named by section.
func bkRuns(r *report) (names []string, runs []run) {
	add := func(section string, ts []*toolResult) {
		for _, t := range ts {
			if !strings.HasPrefix(t.Name, "bk") {
				continue
			}
			for _, x := range t.Runs {
				names = append(names, strings.TrimSpace(section+" "+t.Name+" "+x.Name))
				runs = append(runs, x)
			}
		}
	}
	add("", r.Tools)
	if r.Nights != nil {
		add("nights:", r.Nights.Tools)
	}
	if r.Chain != nil {
		for _, x := range append(append([]run{}, r.Chain.Runs...), r.Chain.Restores...) {
			names = append(names, "chain: bk "+x.Name)
			runs = append(runs, x)
		}
	}
	if r.PG != nil {
		add("pgbench:", r.PG.Tools)
	}
	if r.Days != nil {
		for _, d := range r.Days.Engines {
			add("days "+d.Engine+":", d.Tools)
		}
	}
	if r.S3 != nil {
		for _, x := range r.S3.Local {
			names, runs = append(names, "s3: bk local "+x.Name), append(runs, x.run)
		}
		for _, x := range r.S3.S3 {
			names, runs = append(names, "s3: bk s3 "+x.Name), append(runs, x.run)
		}
	}
	if bk := r.Retention.bk(); bk != nil {
		for _, x := range bk.bkRuns() {
			names = append(names, "retention: bk "+x.Name)
			runs = append(runs, x)
		}
	}
	return names, runs
}
