package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

// TestSuggestionsFromBenignFindings: three colleagues behind one office
// /24 trip brute-force every day and are resolved as benign; a real attack
// from elsewhere with far more failures is resolved as malicious. The
// suggestions are to trust the office /24 and to raise min_failures just
// above the office's counts, each backtested to spare the office's
// findings and keep the attack's.
func TestSuggestionsFromBenignFindings(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	acme, _ := n.tenantClient(t, "acme")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"
	var evs []client.Event
	fail := func(id, actor, ip string, at time.Time) {
		evs = append(evs, client.Event{ID: id, Action: "auth.login.failure", Time: at, Reason: "invalid_password",
			Actor: client.Actor{ID: actor}, Context: client.Context{IP: ip, UserAgent: ua}})
	}
	for day := 1; day <= 3; day++ {
		for u := range 3 {
			at := today.AddDate(0, 0, -day).Add(time.Duration(8+u) * time.Hour)
			for i := range 11 {
				fail(fmt.Sprintf("o%d-%d-%d", day, u, i), fmt.Sprintf("staff%d@acme.example", u), fmt.Sprintf("198.51.100.%d", 10+u), at.Add(time.Duration(i)*15*time.Second))
			}
		}
	}
	at := today.AddDate(0, 0, -2).Add(20 * time.Hour)
	for i := range 30 {
		fail(fmt.Sprintf("x%d", i), "ceo@acme.example", "203.0.113.66", at.Add(time.Duration(i)*5*time.Second))
	}
	if _, err := acme.Send(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	var fs []client.Finding
	deadline := time.Now().Add(60 * time.Second)
	for {
		page, err := acme.SearchFindings(ctx, client.FindingParams{Rule: "brute-force", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if fs = page.Findings; len(fs) == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d brute-force findings after 60s, want 10", len(fs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Nothing resolved as benign yet: nothing to suggest.
	if ss, err := acme.Suggestions(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("suggestions before any benign resolution: %+v %v", ss, err)
	}
	for _, f := range fs {
		u := client.FindingUpdate{Status: "resolved", Note: "staff mistyping behind the office NAT", Resolution: "benign"}
		if f.ActorID == "ceo@acme.example" {
			u = client.FindingUpdate{Status: "resolved", Note: "password reset, attacker blocked", Resolution: "malicious"}
		}
		if _, err := acme.UpdateFinding(ctx, f.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	ss, err := acme.Suggestions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 {
		t.Fatalf("%d suggestions, want 2: %+v", len(ss), ss)
	}
	a, th := ss[0], ss[1]
	if a.Kind != "allowlist" || a.RuleID != "brute-force" || a.Allow == nil || a.Allow.Kind != "cidr" || a.Allow.Value != "198.51.100.0/24" {
		t.Fatalf("first suggestion: %+v", a)
	}
	if th.Kind != "threshold" || th.RuleID != "brute-force" || fmt.Sprint(th.Params["min_failures"]) != "12" {
		t.Fatalf("second suggestion: %+v", th)
	}
	for _, s := range ss {
		if s.Effect.Current != 10 || s.Effect.Proposed != 1 || len(s.Findings) == 0 || s.Reason == "" {
			t.Fatalf("%s suggestion's effect: %+v (%s)", s.Kind, s.Effect, s.Reason)
		}
	}
}
