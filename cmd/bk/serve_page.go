package main

import (
	"embed"
	"fmt"
	"html/template"
	"math"
	"time"

	"github.com/bk-backup/bk/repo"
)

//go:embed serve/status.html
var serveFiles embed.FS

// statusTemplate renders statusPage; html/template escapes every value.
var statusTemplate = template.Must(template.ParseFS(serveFiles, "serve/status.html"))

// chartDays is how many days the bar chart of the status page covers,
// today included.
const chartDays = 30

// statusPage is what the status page shows.
type statusPage struct {
	Location  string // the repository, without credentials
	Host      string // whose snapshots count
	Config    string
	Snapshots string // "3 snapshots"
	Size      string
	Late      []string // lateJobs' lines
	Scheduled string   // "2 scheduled jobs"; "" when none is
	Jobs      []jobStatus
	Chart     chart
	Read      string // when the snapshot list was read
	Generated string
	Version   string
}

// jobStatus is one job of the status page, with a row per source.
type jobStatus struct {
	Name     string
	Schedule string // "" when not scheduled
	Allowed  string // age its newest good snapshot may have
	Sources  []string
	Rows     []sourceStatus
	Check    string // "passed", "failed" or "" for never
	CheckAt  string
}

// sourceStatus is the newest snapshot of one source of a job.
type sourceStatus struct {
	Name     string // snapshot name; "" when the job never ran
	Time     string // of the newest snapshot; "" for never
	ISOTime  string
	Ago      string
	Status   string // good, suspicious, broken, late, none
	Size     string
	Added    string
	LastGood string // of the newest good snapshot, when not the newest
}

// page builds the status page of view v.
func (s *server) page(v *repoView) statusPage {
	now := s.now()
	p := statusPage{
		Location:  redactURL(v.Location),
		Host:      v.Host,
		Config:    s.cfg.Path,
		Snapshots: plural(len(v.Snapshots), "snapshot"),
		Size:      formatBytes(v.PackBytes),
		Late:      lateJobs(v, s.cfg.Jobs, now),
		Read:      v.Read.Format("2006-01-02 15:04:05 MST"),
		Generated: now.Format("2006-01-02 15:04:05 MST"),
		Version:   version,
	}
	var all []*repo.Snapshot
	scheduled := 0
	for _, job := range s.cfg.Jobs {
		snaps := v.jobSnapshots(job.Name)
		all = append(all, snaps...)
		js := jobStatus{Name: job.Name, Schedule: job.Schedule}
		if job.Schedule != "" {
			scheduled++
			js.Allowed = formatAge(allowedAge(job.Schedule))
		}
		for _, src := range job.Sources {
			js.Sources = append(js.Sources, redactURL(src))
		}
		if rec := loadCheckRecord(job.Name); rec != nil {
			js.Check, js.CheckAt = "failed", rec.Time.Local().Format("2006-01-02 15:04")
			if rec.OK {
				js.Check = "passed"
			}
		}
		js.Rows = sourceRows(job.Schedule, snaps, now)
		p.Jobs = append(p.Jobs, js)
	}
	if scheduled > 0 {
		p.Scheduled = plural(scheduled, "scheduled job")
	}
	p.Chart = addedChart(all, now)
	return p
}

// sourceRows returns a row per source of a job's snapshots (oldest first),
// in the order the sources first appear, or one "never" row.
func sourceRows(schedule string, snaps []*repo.Snapshot, now time.Time) []sourceStatus {
	bySource := map[string][]*repo.Snapshot{}
	var order []string
	for _, s := range snaps {
		if bySource[s.Name] == nil {
			order = append(order, s.Name)
		}
		bySource[s.Name] = append(bySource[s.Name], s)
	}
	if len(order) == 0 {
		st := "none"
		if schedule != "" {
			st = "late"
		}
		return []sourceStatus{{Status: st}}
	}
	var rows []sourceStatus
	for _, name := range order {
		list := bySource[name]
		newest := list[len(list)-1]
		row := sourceStatus{Name: name, Time: newest.Time.Local().Format("2006-01-02 15:04"),
			ISOTime: newest.Time.UTC().Format(time.RFC3339), Ago: formatAge(ago(now.Sub(newest.Time))) + " ago",
			Size: formatBytes(newest.Size), Added: formatBytes(newest.AddedBytes), Status: "good"}
		if now.Sub(newest.Time) < time.Minute {
			row.Ago = "just now"
		}
		good := lastGood(list)
		switch {
		case schedule != "" && (good.IsZero() || now.Sub(good) > allowedAge(schedule)):
			row.Status = "late"
		case newest.Status != "":
			row.Status = newest.Status
		}
		if !good.IsZero() && !good.Equal(newest.Time) {
			row.LastGood = good.Local().Format("2006-01-02 15:04")
		}
		rows = append(rows, row)
	}
	return rows
}

// ago rounds an age down for display: to the hour past a day, else to the
// minute.
func ago(d time.Duration) time.Duration {
	if d >= 24*time.Hour {
		return d.Truncate(time.Hour)
	}
	return d.Truncate(time.Minute)
}

// Geometry of the chart, in SVG user units.
const (
	chartWidth  = 960
	chartHeight = 200
	chartLeft   = 72 // room for the axis labels
	chartRight  = 8
	chartTop    = 12
	chartBottom = 28 // room for the dates
)

// chart is the bar chart of the bytes added per day.
type chart struct {
	Width, Height int
	Left, Right   int // x of the plot area
	Top, Bottom   int // y of the plot area
	AxisX         int // right end of the axis labels
	DateY         int // baseline of the dates
	CenterX       int
	CenterY       int
	Bars          []bar
	Grid          []gridLine
	Total         string
	Empty         bool
	From, To      string
}

type bar struct {
	X, Y, W, H int
	LabelX     int
	Label      string // the date under the bar, every few days
	Title      string // the tooltip
}

type gridLine struct {
	Y      int
	LabelY int
	Label  string
}

// addedChart sums the added bytes of snaps per local day over the last
// chartDays days up to now.
func addedChart(snaps []*repo.Snapshot, now time.Time) chart {
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	first := today.AddDate(0, 0, -(chartDays - 1))
	var sums [chartDays]int64
	var total int64
	for _, s := range snaps {
		t := s.Time.In(now.Location())
		if t.Before(first) || !t.Before(today.AddDate(0, 0, 1)) {
			continue
		}
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, now.Location())
		i := daysBetween(first, d)
		if i >= 0 && i < chartDays {
			sums[i] += s.AddedBytes
			total += s.AddedBytes
		}
	}
	var peak int64
	for _, n := range sums {
		peak = max(peak, n)
	}
	c := chart{Width: chartWidth, Height: chartHeight, Left: chartLeft, Right: chartWidth - chartRight,
		Top: chartTop, Bottom: chartHeight - chartBottom, Total: formatBytes(total), Empty: total == 0,
		From: first.Format("2006-01-02"), To: today.Format("2006-01-02")}
	c.AxisX, c.DateY = c.Left-8, c.Bottom+18
	c.CenterX, c.CenterY = (c.Left+c.Right)/2, (c.Top+c.Bottom)/2
	top := niceCeil(peak)
	plotH := float64(c.Bottom - c.Top)
	for _, f := range []float64{0, 0.5, 1} {
		y := c.Bottom - int(math.Round(f*plotH))
		c.Grid = append(c.Grid, gridLine{Y: y, LabelY: y + 4, Label: formatBytes(int64(f * float64(top)))})
	}
	slot := float64(c.Right-c.Left) / chartDays
	for i, n := range sums {
		day := first.AddDate(0, 0, i)
		h := int(math.Round(float64(n) / float64(top) * plotH))
		if n > 0 && h < 1 {
			h = 1 // a day with data shows, however small
		}
		x := c.Left + int(math.Round(float64(i)*slot+slot*0.15))
		b := bar{X: x, W: max(int(math.Round(slot*0.7)), 1), H: h, Y: c.Bottom - h,
			LabelX: c.Left + int(math.Round(float64(i)*slot+slot/2)),
			Title:  fmt.Sprintf("%s: %s added", day.Format("Mon 2006-01-02"), formatBytes(n))}
		if (chartDays-1-i)%5 == 0 {
			b.Label = day.Format("01-02")
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// daysBetween counts the calendar days from a to b (both midnights of the
// same location), robust to days of 23 or 25 hours.
func daysBetween(a, b time.Time) int {
	return int(math.Round(b.Sub(a).Hours() / 24))
}

// niceCeil rounds n up to 1, 2, 3, 4, 5, 6 or 8 times a power of ten of
// its binary unit (KiB, MiB, ...), or to the next unit, so the axis labels
// are round; at least 1 KiB.
func niceCeil(n int64) int64 {
	unit := int64(1)
	for n/unit >= 1024 {
		unit *= 1024
	}
	v := float64(n) / float64(unit)
	for _, m := range []float64{1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 40, 50, 60, 80, 100, 200, 300, 400, 500, 600, 800} {
		if v <= m {
			return max(int64(m*float64(unit)), 1024)
		}
	}
	return 1024 * unit // one of the next unit
}
