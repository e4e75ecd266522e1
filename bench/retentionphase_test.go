package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRetentionPhase runs the retention phase at a tiny size against the
// real binary and checks what it measured against the generator (what the
// purge had to delete, how many partitions remain) and that the report
// carries the figures.
func TestRetentionPhase(t *testing.T) {
	e := env(t)
	o := RetentionOptions{Days: 12, PerDay: 50, KeepDays: 4, Clients: 2, Baseline: time.Second, RollDays: 6, RollPerDay: 200, RollKeep: 1}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	r := measureRetention(bounded(t, 5*time.Minute), e.Bin, e.Work, o, e.Logf)
	if r.Err != nil || r.RollErr != nil {
		t.Fatalf("purge: %v; long run: %v", r.Err, r.RollErr)
	}

	// The history is o.Days whole days of o.PerDay events each; the run cut
	// at midnight o.KeepDays days back (a day later if a midnight passed).
	days := o.Days - o.KeepDays
	if got := r.Purged.Before.Sub(r.Purged.Before.Truncate(24 * time.Hour)); got != 0 {
		t.Fatalf("cutoff %s is not a midnight", r.Purged.Before)
	}
	if r.WantPurged != int64(days*o.PerDay) && r.WantPurged != int64((days+1)*o.PerDay) {
		t.Errorf("the generator dated %d events before %s, want %d days' worth (%d)", r.WantPurged, r.Purged.Before, days, days*o.PerDay)
	}
	if r.Purged.Events != r.WantPurged {
		t.Errorf("the run purged %d events, want %d", r.Purged.Events, r.WantPurged)
	}
	// History partitions plus today's (the live load, the purge record).
	if r.PartsBefore < o.Days+1 || r.PartsAfter > o.KeepDays+2 || r.PartsBefore-r.PartsAfter < days-1 {
		t.Errorf("partition files %d before, %d after; want %d+ before and at most %d after", r.PartsBefore, r.PartsAfter, o.Days+1, o.KeepDays+2)
	}
	if r.History.Accepted != int64(o.Days*o.PerDay) || r.Baseline.Events == 0 || r.During.Events == 0 {
		t.Errorf("history accepted %d of %d; baseline %d, during %d events", r.History.Accepted, o.Days*o.PerDay, r.Baseline.Events, r.During.Events)
	}
	if r.Window.Elapsed != r.Purge || r.After.Requests == 0 || r.Window.Events+r.After.Events > int(r.During.Events) {
		t.Errorf("windows %+v during the purge (%s) and %+v after it, of a load of %d events", r.Window, r.Purge, r.After, r.During.Events)
	}
	if r.RSSBefore == 0 || r.PeakRSS < r.RSSBefore || sumBytes(r.DirBefore) == 0 {
		t.Errorf("RSS %d before, peak %d; data dir %v", r.RSSBefore, r.PeakRSS, r.DirBefore)
	}

	// The long run: after day k the store keeps days k-RollKeep..k (and
	// today's partition with the purge records), and what went is every
	// event dated before the last cutoff.
	if len(r.Roll) != o.RollDays {
		t.Fatalf("%d samples, want %d", len(r.Roll), o.RollDays)
	}
	var purged int64
	for _, s := range r.Roll {
		purged += s.Purged
		if s.Bytes[keySim] <= 0 || s.Bytes[keyToday] < 0 || s.Bytes[keyEvents] != 0 {
			t.Errorf("day %d: events/ split into %d + %d (and %d unsplit)", s.Day, s.Bytes[keySim], s.Bytes[keyToday], s.Bytes[keyEvents])
		}
		if s.Parts > min(s.Day+1, o.RollKeep+1)+1 {
			t.Errorf("day %d: %d partition files, want at most %d", s.Day, s.Parts, min(s.Day+1, o.RollKeep+1)+1)
		}
	}
	last := r.Roll[len(r.Roll)-1]
	gone := int(last.Before.Sub(r.RollStart) / (24 * time.Hour))
	if want := int64(gone * o.RollPerDay); purged != want {
		t.Errorf("the long run purged %d events, want %d (%d days before %s)", purged, want, gone, last.Before)
	}

	rep := retentionReport(r, 0)
	for _, want := range []string{
		"## Retention",
		"| retention of 12 days while ingest runs at its benchmark rate |",
		fmt.Sprintf("**%.0f events/s**", r.Window.Rate()),
		fmt.Sprintf("against %.0f events/s", r.Baseline.Rate()),
		fmt.Sprintf("and %.0f events/s (p99 %s) right after it", r.After.Rate(), fmtDur(pct(r.After.Lat, .99))),
		fmt.Sprintf("| events purged | %d (the generator dated %d", r.Purged.Events, r.WantPurged),
		fmt.Sprintf("| partition files | %d before, %d after |", r.PartsBefore, r.PartsAfter),
		fmt.Sprintf("| `POST /v1/retention/run` round trip | **%s** |", fmtDur(r.Purge)),
		fmt.Sprintf("load average was %s as the baseline ended, %s as the purge ended and %s as the control ended", r.LoadBaseline, r.LoadPurge, r.LoadAfter),
		"| the data directory of a long run stops growing once retention applies | 6 simulated days, retention 1 day:",
		fmt.Sprintf("%d events sent, %d purged", o.RollDays*o.RollPerDay, purged),
		"\nsimulated ",
		"\ntoday     ",
		"\nstream.db ",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("the report lacks %q:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "not measured") || strings.Contains(rep, "failed:") {
		t.Errorf("the report has a gap:\n%s", rep)
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := LoadResult{Reqs: []Req{
		{End: at(0.5), Lat: 400 * time.Millisecond, Events: 1000},  // before the window
		{End: at(1.5), Lat: 800 * time.Millisecond, Events: 1000},  // started before, answered inside
		{End: at(2.5), Lat: 300 * time.Millisecond, Events: 1000},  // inside
		{End: at(3.5), Lat: 2000 * time.Millisecond, Events: 1000}, // outstanding inside, answered after
		{End: at(4.5), Lat: 100 * time.Millisecond, Events: 1000},  // after
	}}
	w := window(r, at(1), at(3))
	if w.Elapsed != 2*time.Second || w.Requests != 2 || w.Events != 2000 || w.Rate() != 1000 {
		t.Errorf("window %+v, rate %.0f", w, w.Rate())
	}
	if len(w.Lat) != 3 || pct(w.Lat, 1) != 2*time.Second {
		t.Errorf("latencies %v, want the three requests outstanding in the window", w.Lat)
	}
}

func TestSeriesPlateau(t *testing.T) {
	const m = 1 << 20
	// A retention of 2 days: the first purge follows day 3.
	flat := seriesPlateau([]int64{1 * m, 2 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m}, 2)
	if !flat.Flat || flat.K != 3 || flat.Before != m || flat.After != 0 {
		t.Errorf("plateau: %+v", flat)
	}
	grow := seriesPlateau([]int64{1 * m, 2 * m, 3 * m, 4 * m, 5 * m, 6 * m, 7 * m, 8 * m, 9 * m, 10 * m, 11 * m, 12 * m}, 2)
	if grow.Flat || grow.After != m {
		t.Errorf("steady growth: %+v", grow)
	}
	slow := seriesPlateau([]int64{1 * m, 2 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3 * m, 3*m + m/4, 3*m + m/2}, 2)
	if slow.Flat || slow.After != m/4 {
		t.Errorf("a quarter of a day's growth: %+v", slow)
	}
	if p := seriesPlateau([]int64{m, m}, 1); p.K != 0 || p.Flat {
		t.Errorf("two samples: %+v", p)
	}
	if got := flat.String(); got != "+1.00 MiB per simulated day before retention applied, ±0.00 MiB per day over the last 3" {
		t.Errorf("String() = %q", got)
	}
}

// TestPerfReportHasRetention: the performance report (docs/performance.md)
// renders the retention section, with the batched phase's rate beside the
// rate measured during the purge.
func TestPerfReportHasRetention(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Perf{liveGen: NewGen(1000, t0, t0.Add(time.Hour))}
	p.Batched = LoadResult{Events: 30_000, Elapsed: time.Second}
	p.Retention = &RetentionResult{Opts: RetentionOptions{Days: 400, KeepDays: 30},
		Baseline: LoadResult{Events: 20_000, Elapsed: time.Second, Requests: 20},
		Window:   LoadWindow{Elapsed: 2 * time.Second, Events: 36_000, Requests: 36},
		After:    LoadWindow{Elapsed: time.Second, Events: 20_000, Requests: 20},
		Purge:    2 * time.Second}
	rep := p.Report()
	for _, want := range []string{
		"## Retention\n",
		"| retention of 400 days while ingest runs at its benchmark rate | 370 days purged in 2.00 s while batched ingest acknowledged **18000 events/s**",
		"against 20000 events/s", "and 20000 events/s (p99 n/a) right after it on the same server: 90 % of their mean (the batched phase above: 30000 events/s) | **met** |",
		"| the data directory of a long run stops growing once retention applies | not run",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

// TestPerfSamplesServerMemory samples a running server's memory as the
// performance run does after each phase, and the report renders the
// samples: resident memory split into what the process owns and the file
// pages it maps.
func TestPerfSamplesServerMemory(t *testing.T) {
	e := env(t)
	srv, err := StartServer(e.Bin, e.Work)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Kill()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Perf{liveGen: NewGen(1000, t0, t0.Add(time.Hour))}
	p.sampleMem(srv, "started")
	m := p.Mem[0]
	if m.Anon <= 0 || m.File <= 0 || m.RSS < m.Anon+m.File || m.HWM < m.RSS {
		t.Fatalf("memory sample %+v: want RssAnon and RssFile above 0, VmRSS at least their sum, VmHWM at least VmRSS", m)
	}
	rep := p.Report()
	want := fmt.Sprintf("| started | %s | %s | %s | %s |", mib(m.RSS), mib(m.Anon), mib(m.File), mib(m.HWM))
	if !strings.Contains(rep, "| after | VmRSS | RssAnon | RssFile | VmHWM |") || !strings.Contains(rep, want) {
		t.Errorf("the report lacks the memory table row %q", want)
	}
}
