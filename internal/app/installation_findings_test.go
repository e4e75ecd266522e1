package app_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
)

// TestInstallationWideFindings: a finding of an installation-wide rule has
// no tenant. An operator key fetches it (with its evidence, which names
// events of several tenants as tenant/id) and triages it without naming a
// tenant, within its scopes; the read is audited.
func TestInstallationWideFindings(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	a, _ := n.tenantClient(t, "tenant-a")
	b, _ := n.tenantClient(t, "tenant-b")
	at := time.Now().Add(-time.Minute).UTC()
	for _, s := range []struct {
		c  *client.Client
		id string
	}{{a, "x-1"}, {b, "x-1"}, {b, "x-2"}} {
		if _, err := s.c.Send(ctx, client.Event{ID: s.id, Action: "auth.login.failure", Time: at, Reason: "unknown_user",
			Actor: client.Actor{ID: "nobody-" + s.id}, Context: client.Context{IP: "203.0.113.9"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitForEvents(t, a, client.SearchParams{Action: "auth.login.failure"}, 1)
	waitForEvents(t, b, client.SearchParams{Action: "auth.login.failure"}, 2)
	f := audit.Finding{ID: "fnd_inst", Tenant: "", RuleID: "distributed-credential-stuffing-installation", Severity: audit.SeverityHigh,
		Status: audit.StatusOpen, GroupKey: "all", Explanation: "a campaign", Count: 3, FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at,
		Evidence: []string{"tenant-a/x-1", "tenant-b/x-2", "tenant-b/gone"}}
	if err := n.app.Stores().Findings.UpsertFindings(ctx, []audit.Finding{f}); err != nil {
		t.Fatal(err)
	}

	status, body := raw(t, "GET", n.url+"/v1/findings/fnd_inst", n.operator, "")
	var got struct {
		Finding  audit.Finding `json:"finding"`
		Evidence []audit.Event `json:"evidence"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil {
		t.Fatalf("operator GET: %d %s", status, body)
	}
	if got.Finding.ID != "fnd_inst" || got.Finding.Tenant != "" || len(got.Evidence) != 2 {
		t.Fatalf("operator GET: %+v", got)
	}
	if e := got.Evidence; e[0].Tenant != "tenant-a" || e[0].ID != "x-1" || e[1].Tenant != "tenant-b" || e[1].ID != "x-2" {
		t.Fatalf("evidence: %+v", e)
	}
	// Naming a tenant reaches that tenant's findings, not this one.
	if status, _ := raw(t, "GET", n.url+"/v1/findings/fnd_inst?tenant=tenant-a", n.operator, ""); status != http.StatusNotFound {
		t.Fatalf("operator GET with a tenant: %d, want 404", status)
	}

	// Scopes hold for operator keys: findings:read may read, not triage.
	ro, err := n.op.CreateKey(ctx, client.CreateKeyRequest{Name: "ro", Scopes: []string{"findings:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := raw(t, "GET", n.url+"/v1/findings/fnd_inst", string(ro.Secret), ""); status != http.StatusOK {
		t.Fatalf("findings:read operator GET: %d", status)
	}
	if status, _ := raw(t, "PATCH", n.url+"/v1/findings/fnd_inst", string(ro.Secret), `{"status":"resolved","note":"n"}`); status != http.StatusForbidden {
		t.Fatalf("findings:read operator PATCH: %d, want 403", status)
	}
	ev, err := n.op.CreateKey(ctx, client.CreateKeyRequest{Name: "ev", Scopes: []string{"events:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := raw(t, "GET", n.url+"/v1/findings/fnd_inst", string(ev.Secret), ""); status != http.StatusForbidden {
		t.Fatalf("events:read operator GET: %d, want 403", status)
	}

	// Triage through the SDK, as the CLI does.
	upd, err := n.op.UpdateFinding(ctx, "fnd_inst", client.FindingUpdate{Status: "resolved", Note: "a pen test", Resolution: "benign"})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Status != "resolved" || upd.Resolution != "benign" || upd.Tenant != "" {
		t.Fatalf("triaged: %+v", upd)
	}
	stored, err := n.app.Stores().Findings.GetFinding(ctx, "", "fnd_inst")
	if err != nil || stored.Status != audit.StatusResolved || stored.Note != "a pen test" {
		t.Fatalf("stored: %+v %v", stored, err)
	}

	// The operator's read was audited in every tenant whose data it may show.
	for _, c := range []*client.Client{a, b} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var found bool
			for e, err := range c.Events(ctx, client.SearchParams{Action: "vigil.search"}) {
				if err != nil {
					t.Fatal(err)
				}
				if e.Metadata["route"] == "GET /v1/findings/{id}" && e.Metadata["scope"] == "all_tenants" {
					found = true
				}
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no vigil.search record of the operator's finding read")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
