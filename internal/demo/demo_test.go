package demo_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/demo"
)

// TestDemoCatchesEveryCampaign runs the whole demo — a real server on an
// embedded store, simulated history, live attack campaigns — on a small
// world, and checks that every campaign is caught and the report is printed.
func TestDemoCatchesEveryCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the full demo")
	}
	var out strings.Builder
	rep, err := demo.Run(t.Context(), demo.Options{
		Dir: t.TempDir(), Addr: "127.0.0.1:0", Seed: 42, UsersPerTenant: 100, Days: 10, Exit: true, Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Campaigns) < 12 {
		t.Fatalf("%d campaigns ran, want at least 12", len(rep.Campaigns))
	}
	for _, c := range rep.Campaigns {
		if !c.Caught {
			t.Errorf("campaign %q was not caught (other rules that fired: %v)", c.Name, c.Also)
		}
		if c.Caught && c.Explanation == "" {
			t.Errorf("campaign %q caught without an explanation", c.Name)
		}
	}
	if rep.HistoryCount == 0 || rep.LiveCount == 0 || rep.BenignUsers != 300 || rep.BenignEvents == 0 {
		t.Fatalf("report sizes: %+v", rep)
	}
	for _, want := range []string{"CAMPAIGN", "campaigns caught", "False alarms on the benign population", "per 10,000 benign events"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// --exit stops after the report: nothing is served, so no address,
	// key or request to try is offered.
	for _, unwanted := range []string{"Vigil is serving", "try: curl", "read key"} {
		if strings.Contains(out.String(), unwanted) {
			t.Errorf("with Exit the output offers %q:\n%s", unwanted, out.String())
		}
	}
	t.Logf("false alarms: %v (%.2f per 10,000 benign events)", rep.FalseAlarms, rep.FalseAlarmsPer10k())
}

// TestDemoAtAnyHour runs the demo with its clock set to hours at which it
// used to fail (a logout simulated after the history's end, in the
// server's future) and on a weekend, on a tiny world, with no directory
// given: each run must succeed and leave nothing in the temporary
// directory.
func TestDemoAtAnyHour(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo several times")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, at := range []string{
		"2026-12-05T01:10:00Z", // Saturday night
		"2026-12-07T04:45:00Z", // Monday, early
		"2026-12-09T07:59:00Z",
		"2026-12-10T14:30:00Z",
	} {
		clock, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		rep, err := demo.Run(t.Context(), demo.Options{
			Addr: "127.0.0.1:0", Seed: 7, UsersPerTenant: 15, Days: 8, Exit: true, Out: &out,
			Now: func() time.Time { return clock },
		})
		if err != nil {
			t.Fatalf("clock %s: %v\n%s", at, err, out.String())
		}
		if want := demo.Anchor(7, clock); !rep.Anchor.Equal(want) || !rep.Anchor.Before(clock.Add(-6*24*time.Hour)) {
			t.Errorf("clock %s: anchored at %s, want %s, over six days back", at, rep.Anchor, want)
		}
		left, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range left {
			t.Errorf("clock %s: the demo left %s in the temporary directory", at, e.Name())
		}
	}
}

// TestDemoCleansUpWhenCancelled stops a demo before it ends, as Ctrl-C
// does: it returns the context's error and removes its directory.
func TestDemoCleansUpWhenCancelled(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := demo.Run(ctx, demo.Options{Addr: "127.0.0.1:0", UsersPerTenant: 15, Days: 8, Out: io.Discard}); err == nil {
		t.Fatal("a cancelled demo reported success")
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("the cancelled demo left %s in the temporary directory", e.Name())
	}
}

// TestAnchorDependsOnSeedNotClock checks that two clocks in different
// weeks give the same weekday and hour for a seed.
func TestAnchorDependsOnSeedNotClock(t *testing.T) {
	a := demo.Anchor(42, time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC))
	b := demo.Anchor(42, time.Date(2027, 3, 17, 22, 0, 0, 0, time.UTC))
	if a.Weekday() != b.Weekday() || a.Hour() != b.Hour() || a.Minute() != 0 {
		t.Errorf("seed 42 anchors at %s and %s", a, b)
	}
}
