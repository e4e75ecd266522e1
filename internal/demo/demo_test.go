package demo_test

import (
	"strings"
	"testing"

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
	if rep.HistoryCount == 0 || rep.LiveCount == 0 || rep.BenignUsers != 300 {
		t.Fatalf("report sizes: %+v", rep)
	}
	for _, want := range []string{"CAMPAIGN", "campaigns caught", "False alarms on the benign population", "read key for tenant acme"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("false alarms: %v", rep.FalseAlarms)
}
