package app_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
)

// TestBacktestOverHTTP replays three days of failed logins — each day one
// account failing 12 times and two failing 6 times — through brute-force
// as it is (10 failures) and as proposed: 5 raises three findings a day,
// 20 raises none and lists what it removes. Nothing is stored, the read is
// audited, and bad requests name their field.
func TestBacktestOverHTTP(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	acme, _ := n.tenantClient(t, "acme")
	other, _ := n.tenantClient(t, "other")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var evs []client.Event
	for day := 1; day <= 3; day++ {
		at := today.AddDate(0, 0, -day).Add(10 * time.Hour)
		for acct, fails := range []int{12, 6, 6} {
			for i := range fails {
				evs = append(evs, client.Event{ID: fmt.Sprintf("d%d-a%d-%d", day, acct, i), Action: "auth.login.failure",
					Time: at.Add(time.Duration(acct)*time.Hour + time.Duration(i)*20*time.Second), Reason: "invalid_password",
					Actor: client.Actor{ID: fmt.Sprintf("user%d@acme.example", acct)},
					Context: client.Context{IP: fmt.Sprintf("198.51.100.%d", 10+acct),
						UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"}})
			}
		}
	}
	if _, err := acme.Send(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, acme, client.SearchParams{Action: "auth.login.failure"}, len(evs))
	countFindings := func() int {
		page, err := acme.SearchFindings(ctx, client.FindingParams{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Findings)
	}
	// Live detection raises one brute-force finding a day; wait for all
	// three (the last events are held for event-time order a moment), so
	// the count below can only change if a backtest stored something.
	deadline := time.Now().Add(30 * time.Second)
	for countFindings() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	before := countFindings()

	var progressed int
	res, err := acme.Backtest(ctx, "brute-force", client.BacktestRequest{Params: map[string]any{"min_failures": 5}},
		func(client.BacktestProgress) { progressed++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Current != 3 || res.Proposed != 9 || res.Truncated || res.Events < int64(len(evs)) { // the log also holds its read audit
		t.Fatalf("min_failures 5: current %d proposed %d truncated %v events %d; want 3, 9, false, %d", res.Current, res.Proposed, res.Truncated, res.Events, len(evs))
	}
	if fmt.Sprint(res.Params["min_failures"]) != "5" || fmt.Sprint(res.Params["window"]) != "10m0s" {
		t.Fatalf("effective params %v", res.Params)
	}
	perDay := map[string][2]int{}
	for _, d := range res.Days {
		perDay[d.Day.Format("2006-01-02")] = [2]int{d.Current, d.Proposed}
		if d.Proposed > 0 && (len(d.Samples) == 0 || d.Samples[0].ActorID == "" || d.Samples[0].Explanation == "") {
			t.Fatalf("day %s has no usable samples: %+v", d.Day, d)
		}
	}
	for day := 1; day <= 3; day++ {
		if got := perDay[today.AddDate(0, 0, -day).Format("2006-01-02")]; got != [2]int{1, 3} {
			t.Fatalf("day -%d: current/proposed %v, want [1 3] (all days: %v)", day, got, perDay)
		}
	}
	if len(res.Days) != 8 { // since (7 days back, mid-day) to now: 8 calendar days
		t.Fatalf("%d days reported, want 8", len(res.Days))
	}

	res, err = acme.Backtest(ctx, "brute-force", client.BacktestRequest{Params: map[string]any{"min_failures": 20}, Samples: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, d := range res.Days {
		removed += len(d.Removed)
	}
	if res.Current != 3 || res.Proposed != 0 || removed != 3 {
		t.Fatalf("min_failures 20: current %d proposed %d removed samples %d; want 3, 0, 3", res.Current, res.Proposed, removed)
	}

	// An allowlisted address spares its account.
	res, err = acme.Backtest(ctx, "brute-force", client.BacktestRequest{Allow: []client.BacktestAllow{{Kind: "ip", Value: "198.51.100.10"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Current != 3 || res.Proposed != 0 {
		t.Fatalf("allowlisting the attacker's address: current %d proposed %d, want 3, 0", res.Current, res.Proposed)
	}

	// A new rule, given whole.
	newRule := `id: many-failures
name: Many failures on one account
description: Six failed logins on one account within ten minutes.
kind: distinct
severity: low
on: [auth.login.failure]
group_by: [actor]
window: 10m
suppress: 1h
distinct: event.ctx.ip
condition: count >= params.n
explain: "{count} failures on {actor}"
params:
  n: {type: int, default: 6, min: 2}
`
	res, err = acme.Backtest(ctx, "many-failures", client.BacktestRequest{Rule: newRule}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Current != 0 || res.Proposed != 9 {
		t.Fatalf("new rule: current %d proposed %d, want 0 and 9", res.Current, res.Proposed)
	}

	if got := countFindings(); got != before {
		t.Fatalf("backtests stored findings: %d before, %d after", before, got)
	}
	recs := records(t, n.op, "acme", audit.ActionSearch)
	audited := 0
	for _, r := range recs {
		if r.Metadata["route"] == "POST /v1/rules/{rule}/backtest" {
			audited++
		}
	}
	if audited < 4 {
		t.Fatalf("%d backtests in the read audit, want 4", audited)
	}

	for name, c := range map[string]struct {
		rule string
		req  client.BacktestRequest
		want error
	}{
		"bad param":     {"brute-force", client.BacktestRequest{Params: map[string]any{"min_failures": 1}}, client.ErrInvalid},
		"unknown param": {"brute-force", client.BacktestRequest{Params: map[string]any{"bogus": 1}}, client.ErrInvalid},
		"unknown rule":  {"no-such-rule", client.BacktestRequest{}, client.ErrNotFound},
		"range":         {"brute-force", client.BacktestRequest{Since: today.AddDate(0, 0, -60), Until: today}, client.ErrInvalid},
		"rule id":       {"other-id", client.BacktestRequest{Rule: newRule}, client.ErrInvalid},
	} {
		if _, err := acme.Backtest(ctx, c.rule, c.req, nil); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// Another tenant's history is out of reach.
	if _, err := other.ForTenant("acme").Backtest(ctx, "brute-force", client.BacktestRequest{}, nil); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("tenant other backtested acme: %v", err)
	}
	_ = progressed // progress lines come once a second: a short replay may have none
}
