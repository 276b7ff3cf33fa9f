package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
)

// policyHelp explains the --keep-* flags; forget and prune share it.
const policyHelp = `Snapshots are grouped by host and name (--group-by host,name,tags chooses
other fields). In each group, snapshots are taken newest first and every rule
keeps some of them; a snapshot that no rule keeps is removed:

  --keep-last N       the N newest snapshots
  --keep-hourly N     the newest snapshot of each of the N newest hours that
                      have snapshots; likewise --keep-daily, --keep-weekly
                      (ISO weeks, Monday to Sunday), --keep-monthly and
                      --keep-yearly, in the local time zone. -1: no limit.
  --keep-within D     every snapshot at most D older than the group's newest
                      snapshot; D is like 36h, 7d, 2w, 6m or 1y2m
  --keep-tag T        every snapshot tagged T (repeatable)

Suspicious and broken snapshots never fill a --keep-last/hourly/.../yearly
slot: the slot stays open for a good snapshot. --keep-within and --keep-tag
keep suspicious snapshots but never broken ones. Whatever the rules, the
newest good snapshot of each group is kept, and a policy that would remove
every snapshot of a group is refused.`

// keepFlags are the --keep-* and --group-by flags.
type keepFlags struct {
	last, hourly, daily, weekly, monthly, yearly int
	within                                       string
	tags                                         []string
	groupBy                                      string
	fs                                           *pflag.FlagSet
}

func (k *keepFlags) add(c *cobra.Command) {
	f := c.Flags()
	k.fs = f
	f.IntVar(&k.last, "keep-last", 0, "keep the N newest snapshots of each group")
	f.IntVar(&k.hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours with snapshots")
	f.IntVar(&k.daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days with snapshots")
	f.IntVar(&k.weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N weeks with snapshots")
	f.IntVar(&k.monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months with snapshots")
	f.IntVar(&k.yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years with snapshots")
	f.StringVar(&k.within, "keep-within", "", "keep snapshots at most DURATION older than the newest (like 7d, 2w, 1y2m)")
	f.StringArrayVar(&k.tags, "keep-tag", nil, "keep snapshots with this tag (repeatable)")
	f.StringVar(&k.groupBy, "group-by", "host,name", "group snapshots by these fields: host, name, tags")
}

// given reports whether any --keep-* flag was set.
func (k *keepFlags) given() bool {
	for _, name := range []string{"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly", "keep-within", "keep-tag"} {
		if k.fs.Changed(name) {
			return true
		}
	}
	return false
}

// policy returns the policy of the flags, or a usage error.
func (k *keepFlags) policy() (repo.Policy, error) {
	p := repo.Policy{Last: k.last, Hourly: k.hourly, Daily: k.daily, Weekly: k.weekly, Monthly: k.monthly,
		Yearly: k.yearly, Tags: k.tags}
	for name, n := range map[string]int{"last": k.last, "hourly": k.hourly, "daily": k.daily, "weekly": k.weekly, "monthly": k.monthly, "yearly": k.yearly} {
		if n < -1 {
			return p, usagef("--keep-%s %d: give a count, or -1 for no limit", name, n)
		}
	}
	if k.within != "" {
		d, err := repo.ParseDuration(k.within)
		if err != nil {
			return p, usagef("--keep-within: %v", err)
		}
		p.Within = d
	}
	gb, err := repo.ParseGroupBy(k.groupBy)
	if err != nil {
		return p, usagef("--group-by: %v", err)
	}
	p.GroupBy = &gb
	if p.Empty() {
		return p, usagef("the policy keeps nothing: give a --keep-* count above 0")
	}
	return p, nil
}

// pruneFlags are the flags that tune reclaiming space.
type pruneFlags struct {
	maxUnused     string
	maxRepackSize string
}

func (p *pruneFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&p.maxUnused, "max-unused", "5%", "repack a pack when more than this share of it is unused (0% repacks every partly used pack)")
	c.Flags().StringVar(&p.maxRepackSize, "max-repack-size", "", "repack at most this many bytes of packs in one run, like 2GiB (default: no limit)")
}

func (p *pruneFlags) options() (repo.PruneOptions, error) {
	var o repo.PruneOptions
	pct, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(p.maxUnused, "%")), 64)
	if err != nil || pct < 0 || pct > 100 {
		return o, usagef("--max-unused %q: give a percentage from 0%% to 100%%", p.maxUnused)
	}
	o.MaxUnused = pct / 100
	if o.MaxRepackSize, err = parseSize(p.maxRepackSize); err != nil {
		return o, usagef("--max-repack-size: %v", err)
	}
	return o, nil
}

// forgetSpec is what one forget or prune run does.
type forgetSpec struct {
	ids    []string     // named snapshots to remove
	policy *repo.Policy // or a policy to apply
	filter repo.Filter  // the snapshots the policy applies to
	prune  *repo.PruneOptions
	dryRun bool
}

// decisionJSON is one snapshot in the output of forget.
type decisionJSON struct {
	ID      string    `json:"id"`
	ShortID string    `json:"short_id"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Name    string    `json:"name"`
	Tags    []string  `json:"tags"`
	Status  string    `json:"status,omitempty"`
	Action  string    `json:"action"` // "keep" or "remove"
	Rules   []string  `json:"rules"`
}

// groupJSON is one group in the output of forget.
type groupJSON struct {
	Group     repo.GroupKey  `json:"group"`
	Snapshots []decisionJSON `json:"snapshots"`
}

// forgetResult is the --json document of `bk forget` and `bk prune`.
type forgetResult struct {
	DryRun bool        `json:"dry_run"`
	Groups []groupJSON `json:"groups"`
	Kept   int         `json:"kept"`
	// Removed counts the snapshots removed (or, in a dry run, to remove).
	Removed  int             `json:"removed"`
	Prune    *repo.PrunePlan `json:"prune,omitempty"`
	Duration float64         `json:"duration_seconds"`
}

// forgetAndPrune runs spec under one lock: exclusive, or shared for a dry
// run, which changes nothing.
func (a *app) forgetAndPrune(ctx context.Context, spec forgetSpec) error {
	r, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	start := time.Now()
	res := forgetResult{DryRun: spec.dryRun, Groups: []groupJSON{}}
	var plans []repo.GroupPlan
	err = withLock(ctx, r, !spec.dryRun, func() error {
		var remove []crypt.ID
		switch {
		case len(spec.ids) > 0:
			g := repo.GroupPlan{}
			seen := map[crypt.ID]bool{}
			for _, ref := range spec.ids {
				s, err := r.FindSnapshot(ctx, ref, repo.Filter{})
				if err != nil {
					return err
				}
				if !seen[s.ID] {
					seen[s.ID] = true
					g.Decisions = append(g.Decisions, repo.Decision{Snapshot: s, Rules: []string{"named"}})
					remove = append(remove, s.ID)
				}
			}
			plans = []repo.GroupPlan{g}
		case spec.policy != nil:
			var err error
			if plans, remove, err = planPolicy(ctx, r, *spec.policy, spec.filter); err != nil {
				a.printDecisions(plans, &res) // show why it was refused
				return err
			}
		}
		var err error
		res.Prune, err = removeAndPrune(ctx, r, remove, spec.prune, spec.dryRun)
		return err
	})
	if err != nil {
		return err
	}
	res.Duration = time.Since(start).Seconds()
	if a.jsonOut {
		a.printDecisions(plans, &res)
		return a.printJSON(res)
	}
	a.printDecisions(plans, &res)
	if plans != nil {
		verb := "removed"
		if spec.dryRun {
			verb = "would remove"
		}
		if len(spec.ids) > 0 {
			fmt.Fprintf(a.stdout, "%s %d snapshots\n", verb, res.Removed)
		} else {
			fmt.Fprintf(a.stdout, "%s %d snapshots, kept %d\n", verb, res.Removed, res.Kept)
		}
	}
	if res.Prune != nil {
		printPrunePlan(a.stdout, res.Prune, spec.dryRun)
	}
	return nil
}

// planPolicy applies a keep policy to the snapshots that match filter and
// returns the plans and the snapshots to remove.
func planPolicy(ctx context.Context, r *repo.Repository, p repo.Policy, filter repo.Filter) ([]repo.GroupPlan, []crypt.ID, error) {
	list, err := r.Snapshots(ctx, filter)
	if err != nil {
		return nil, nil, err
	}
	plans, err := repo.PlanForget(list, p)
	if err != nil {
		return plans, nil, err
	}
	var remove []crypt.ID
	for _, g := range plans {
		for _, s := range g.Removed() {
			remove = append(remove, s.ID)
		}
	}
	return plans, remove, nil
}

// removeAndPrune removes snapshots and, with prune options, reclaims space;
// a dry run only plans. The prune is planned first, counting the snapshots
// to remove as gone, so a prune that refuses leaves the snapshots too. The
// caller holds the exclusive lock (shared for a dry run).
func removeAndPrune(ctx context.Context, r *repo.Repository, remove []crypt.ID, prune *repo.PruneOptions, dryRun bool) (*repo.PrunePlan, error) {
	var plan *repo.PrunePlan
	if prune != nil {
		opts := *prune
		opts.Forgotten = remove
		var err error
		if plan, err = r.PlanPrune(ctx, opts); err != nil {
			return nil, err
		}
	}
	if dryRun {
		return plan, nil
	}
	if len(remove) > 0 {
		if err := r.RemoveSnapshots(ctx, remove); err != nil {
			return plan, err
		}
	}
	if plan != nil {
		return plan, plan.Execute(ctx)
	}
	return nil, nil
}

// printDecisions fills res with the plans and, without --json, prints one
// table per group.
func (a *app) printDecisions(plans []repo.GroupPlan, res *forgetResult) {
	for _, g := range plans {
		gj := groupJSON{Group: g.Key, Snapshots: []decisionJSON{}}
		for _, d := range g.Decisions {
			s := d.Snapshot
			action := "remove"
			if d.Keep {
				action = "keep"
				res.Kept++
			} else {
				res.Removed++
			}
			tags := s.Tags
			if tags == nil {
				tags = []string{}
			}
			gj.Snapshots = append(gj.Snapshots, decisionJSON{ID: s.ID.String(), ShortID: s.ID.Short(), Time: s.Time,
				Host: s.Host, Name: s.Name, Tags: tags, Status: s.Status, Action: action, Rules: d.Rules})
		}
		res.Groups = append(res.Groups, gj)
		if a.jsonOut {
			continue
		}
		if len(plans) > 1 || g.Key.Host != "" || g.Key.Name != "" {
			fmt.Fprintf(a.stdout, "%s:\n", g.Key)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		for _, d := range gj.Snapshots {
			status := ""
			if d.Status != "" {
				status = " (" + d.Status + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\t%s\n", d.Action, d.ShortID, d.Time.Local().Format(time.DateTime),
				d.Name, status, strings.Join(d.Rules, ", "))
		}
		_ = tw.Flush()
	}
}

// printPrunePlan prints what a prune did, or would do.
func printPrunePlan(w io.Writer, p *repo.PrunePlan, dryRun bool) {
	sum := func(ps []repo.PackInfo) int64 {
		var n int64
		for _, pi := range ps {
			n += pi.Size
		}
		return n
	}
	fmt.Fprintf(w, "%d snapshots need %d blobs in %d of %d indexed packs\n", p.Snapshots, p.UsedBlobs, p.Packs-len(p.Delete), p.Packs)
	if p.Empty() {
		fmt.Fprintln(w, "nothing to prune")
	}
	would := func(verb string) string {
		if dryRun {
			return "would " + verb
		}
		return map[string]string{"delete": "deleted", "repack": "repacked", "replace": "replaced", "reclaim": "reclaimed"}[verb]
	}
	if len(p.Delete) > 0 {
		fmt.Fprintf(w, "%s %d unused packs (%s)\n", would("delete"), len(p.Delete), formatBytes(sum(p.Delete)))
	}
	if len(p.Orphans) > 0 {
		fmt.Fprintf(w, "%s %d packs that no index lists (%s)\n", would("delete"), len(p.Orphans), formatBytes(sum(p.Orphans)))
	}
	if len(p.Repack) > 0 {
		fmt.Fprintf(w, "%s %d partly used packs (%s), copying %s of used blobs\n", would("repack"),
			len(p.Repack), formatBytes(p.RepackBytes), formatBytes(p.CopyBytes))
	}
	if p.IndexFiles > 0 {
		fmt.Fprintf(w, "%s %d index files\n", would("replace"), p.IndexFiles)
	}
	if !p.Empty() {
		fmt.Fprintf(w, "%s %s\n", would("reclaim"), formatBytes(p.Reclaim))
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func (a *app) forgetCommand() *cobra.Command {
	var (
		keep         keepFlags
		pf           pruneFlags
		f            repo.Filter
		dryRun, prun bool
	)
	c := &cobra.Command{
		Use:   "forget (--keep-* ... | SNAPSHOT...)",
		Short: "Remove snapshots by a retention policy, or by ID",
		Long: `Remove snapshots, either those that a retention policy does not keep or those
named by ID (or unique ID prefix). Only the snapshot records are removed; the
space their data takes is reclaimed by 'bk prune', or by --prune right away.

` + policyHelp + `

--name, --host and --tag limit the snapshots the policy looks at; the others
are left alone. --dry-run prints, per group, each snapshot with "keep" or
"remove" and the rules that decided it, and changes nothing. forget takes
the repository's exclusive lock (a dry run a shared one).`,
		Example: `  bk forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  bk forget --keep-last 3 --keep-within 14d --name app
  bk forget --keep-daily 7 --keep-tag release --prune
  bk forget --keep-monthly -1 --group-by host,name,tags --json
  bk forget 3fa2c1d9 7be01c22`,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := forgetSpec{ids: args, filter: f, dryRun: dryRun}
			switch {
			case len(args) > 0 && keep.given():
				return usagef("give snapshot IDs or --keep-* rules, not both")
			case len(args) > 0 && (f.Name != "" || f.Host != "" || len(f.Tags) > 0):
				return usagef("--name, --host and --tag select snapshots for a policy; they do not apply to IDs")
			case len(args) == 0 && !keep.given():
				return usagef("nothing to forget: give --keep-* rules or snapshot IDs")
			case len(args) == 0:
				p, err := keep.policy()
				if err != nil {
					return err
				}
				spec.policy = &p
			}
			if prun {
				o, err := pf.options()
				if err != nil {
					return err
				}
				spec.prune = &o
			} else if cmd.Flags().Changed("max-unused") || cmd.Flags().Changed("max-repack-size") {
				return usagef("--max-unused and --max-repack-size need --prune")
			}
			return a.forgetAndPrune(cmd.Context(), spec)
		},
	}
	keep.add(c)
	addFilterFlags(c, &f)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed and change nothing")
	c.Flags().BoolVar(&prun, "prune", false, "reclaim the space right away, as 'bk prune' does")
	pf.add(c)
	return c
}
