package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil/client"
)

func TestTenants(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	ctx := t.Context()
	created, err := c.CreateTenant(ctx, client.CreateTenantRequest{ID: "acme", Name: "Acme Corp"})
	if err != nil {
		t.Fatal(err)
	}
	if created.RetentionDays != 400 || created.CreatedAt.IsZero() {
		t.Errorf("created = %+v", created)
	}
	if _, err := c.CreateTenant(ctx, client.CreateTenantRequest{ID: "acme"}); !errors.Is(err, client.ErrConflict) {
		t.Errorf("second create: err = %v, want ErrConflict", err)
	}
	if _, err := c.CreateTenant(ctx, client.CreateTenantRequest{ID: "globex", RetentionDays: 30}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "acme" || list[1].RetentionDays != 30 {
		t.Errorf("list = %+v", list)
	}
	got, err := c.GetTenant(ctx, "acme")
	if err != nil || *got != *created {
		t.Errorf("GetTenant = %+v, %v; want %+v", got, err, created)
	}
	if _, err := c.GetTenant(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetTenant(nope) err = %v", err)
	}
}

func TestKeys(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	ctx := t.Context()
	ck, err := c.ForTenant("globex").CreateKey(ctx, client.CreateKeyRequest{Name: "ingest", Scopes: []string{client.ScopeEventsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if ck.Key.Tenant != "globex" || string(ck.Secret) != "vgl_"+ck.Key.ID+"_topsecret" {
		t.Errorf("created = %+v secret %q", ck.Key, string(ck.Secret))
	}
	// The secret must not leak through fmt or slog.
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("created", "key", ck, "secret", ck.Secret)
	for _, out := range []string{fmt.Sprint(ck.Secret), fmt.Sprintf("%v %+v %#v %s", ck, ck, ck, ck.Secret), logs.String()} {
		if bytes.Contains([]byte(out), []byte("topsecret")) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	keys, err := c.ForTenant("globex").ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != ck.Key.ID {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	if err := c.RevokeKey(ctx, ck.Key.ID); err != nil {
		t.Fatal(err)
	}
	keys, _ = c.ForTenant("globex").ListKeys(ctx)
	if keys[0].RevokedAt == nil {
		t.Errorf("key not revoked: %+v", keys[0])
	}
	if err := c.RevokeKey(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("RevokeKey(nope) err = %v", err)
	}
}

func TestFindings(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	ctx := t.Context()
	ids := seed(t, c, 2)
	s.mu.Lock()
	for i, sev := range []string{client.SeverityLow, client.SeverityHigh, client.SeverityCritical, client.SeverityHigh, client.SeverityMedium} {
		id := fmt.Sprintf("f%d", i)
		s.findings[id] = client.Finding{ID: id, Tenant: "acme", RuleID: "credential_stuffing", Severity: sev, Status: client.FindingOpen,
			Evidence: ids, FirstSeen: t0, LastSeen: t0.Add(time.Minute), Explanation: "12 accounts failed from 203.0.113.7"}
	}
	s.mu.Unlock()
	var got []string
	for f, err := range c.Findings(ctx, client.FindingParams{Severity: client.SeverityHigh}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.ID)
	}
	if diff := cmp.Diff([]string{"f3", "f2", "f1"}, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	d, err := c.GetFinding(ctx, "f2")
	if err != nil {
		t.Fatal(err)
	}
	if d.Finding.Severity != client.SeverityCritical || len(d.Evidence) != 2 || d.Evidence[0].ID != ids[0] {
		t.Errorf("detail = %+v", d)
	}
	f, err := c.UpdateFinding(ctx, "f2", client.FindingUpdate{Status: client.FindingResolved, Note: "password reset"})
	if err != nil || f.Status != client.FindingResolved || f.Note != "password reset" {
		t.Fatalf("UpdateFinding = %+v, %v", f, err)
	}
	if _, err := c.GetFinding(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetFinding(nope) err = %v", err)
	}
}

func TestRiskAndHealth(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	r, err := c.Risk(t.Context(), client.Event{Action: client.ActionLoginSuccess, Actor: client.Actor{ID: "alice"},
		Context: client.Context{IP: "198.51.100.1", UserAgent: "Mozilla/5.0", AuthMethod: "password", SessionID: "s1"}})
	if err != nil || r.Score != 72 || r.Decision != client.DecisionChallenge {
		t.Fatalf("Risk = %+v, %v", r, err)
	}
	if err := c.Health(t.Context()); err != nil {
		t.Errorf("Health: %v", err)
	}
	if err := c.Ready(t.Context()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	bad, _ := newClient(t, s, client.WithAPIKey("vgl_nope_nope"))
	if err := bad.Health(t.Context()); err != nil {
		t.Errorf("Health needs no key, got %v", err)
	}
	if _, err := bad.ListTenants(t.Context()); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("wrong key: err = %v", err)
	}
}
