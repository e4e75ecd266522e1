package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

// bruteForce sends 15 failed logins on one account from a few addresses.
func bruteForce(t *testing.T, c *client.Client, actor string, at time.Time) {
	t.Helper()
	var evs []client.Event
	for i := range 15 {
		evs = append(evs, client.Event{Action: "auth.login.failure", Reason: "invalid_password", Time: at.Add(time.Duration(i) * 10 * time.Second),
			Actor: client.Actor{ID: actor}, Context: client.Context{IP: fmt.Sprintf("81.2.69.%d", 10+i%3), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}})
	}
	if _, err := c.Send(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
}

func findingsFor(t *testing.T, c *client.Client, rule, actor string) int {
	t.Helper()
	n := 0
	for f, err := range c.Findings(t.Context(), client.FindingParams{Rule: rule, Actor: actor}) {
		if err != nil {
			t.Fatal(err)
		}
		_ = f
		n++
	}
	return n
}

// TestTenantTuningReachesDetection switches a rule off for one tenant
// through the API and checks detection honours it for that tenant only;
// bad parameters are refused naming the field.
func TestTenantTuningReachesDetection(t *testing.T) {
	n := startNode(t)
	a, keyA := n.tenantClient(t, "tuned")
	b, _ := n.tenantClient(t, "untuned")
	base := n.url + "/v1/rules/brute-force/settings"

	status, body := raw(t, "PUT", base, keyA, `{"params":{"no_such_param":3}}`)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte("no_such_param")) {
		t.Fatalf("bad parameter: %d %s", status, body)
	}
	if status, body = raw(t, "PUT", base, keyA, `{"disabled":true}`); status != http.StatusOK {
		t.Fatalf("disable: %d %s", status, body)
	}
	if status, body = raw(t, "POST", n.url+"/v1/allowlist", keyA, `{"kind":"cidr","value":"198.51.100.7/24","note":"office"}`); status != http.StatusCreated ||
		!bytes.Contains(body, []byte(`"value":"198.51.100.0/24"`)) {
		t.Fatalf("allowlist: %d %s", status, body)
	}

	at := time.Now().Add(-10 * time.Minute).UTC()
	bruteForce(t, a, "victim-a", at)
	bruteForce(t, b, "victim-b", at)
	deadline := time.Now().Add(20 * time.Second)
	for findingsFor(t, b, "brute-force", "victim-b") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the untuned tenant got no brute-force finding")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitForEvents(t, a, client.SearchParams{Actor: "victim-a"}, 15)
	if got := findingsFor(t, a, "brute-force", "victim-a"); got != 0 {
		t.Fatalf("the tenant that switched brute-force off got %d findings", got)
	}
	// Back to defaults: the rule fires again for new attacks.
	if status, body = raw(t, "DELETE", base, keyA, ""); status != http.StatusNoContent {
		t.Fatalf("reset: %d %s", status, body)
	}
	bruteForce(t, a, "victim-a2", at.Add(5*time.Minute))
	deadline = time.Now().Add(20 * time.Second)
	for findingsFor(t, a, "brute-force", "victim-a2") == 0 {
		if time.Now().After(deadline) {
			for f, err := range a.Findings(t.Context(), client.FindingParams{}) {
				t.Logf("finding %v %s %s %s", err, f.RuleID, f.ActorID, f.Explanation)
			}
			status, body := raw(t, "GET", n.url+"/v1/rules/settings", keyA, "")
			t.Logf("settings: %d %s", status, body)
			t.Fatal("brute-force did not come back after the reset")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
