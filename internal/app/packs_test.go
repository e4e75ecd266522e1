package app_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/rules"
)

// TestRulePacksMatchConfig: the configuration validates detect.packs
// against its own list of the packs the binary embeds; the two must agree.
func TestRulePacksMatchConfig(t *testing.T) {
	if got, want := config.RulePacks(), rules.PackNames(); !slices.Equal(got, want) {
		t.Fatalf("config.RulePacks() = %v, internal/rules embeds %v", got, want)
	}
}

// TestRulePackOptIn: the vendor-alerts pack is off by default; with
// detect.packs it is listed, raises findings, and is switched off per
// tenant like any rule. An unknown pack stops the server with the field
// named.
func TestRulePackOptIn(t *testing.T) {
	ctx := t.Context()
	plain := startNode(t)
	pc, _ := plain.tenantClient(t, "acme")
	l, err := pc.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range l.Rules {
		if r.Source != "builtin" {
			t.Errorf("without detect.packs the server lists %s from %s", r.ID, r.Source)
		}
	}
	plain.stop(t)

	n := startNode(t, func(c *config.Config) { c.Detect.Packs = []string{"vendor-alerts"} })
	acme, keyA := n.tenantClient(t, "acme")
	globex, _ := n.tenantClient(t, "globex")
	l, err = acme.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ti, ssh *client.Rule
	for i, r := range l.Rules {
		switch r.ID {
		case "okta-threatinsight":
			ti = &l.Rules[i]
		case "github-ssh-key-created":
			ssh = &l.Rules[i]
		}
	}
	if ti == nil || ssh == nil || ti.Source != "pack:vendor-alerts" || ti.Family != "okta" || !ti.Enabled {
		t.Fatalf("pack rules listed as %+v and %+v", ti, ssh)
	}
	if status, body := raw(t, "PUT", n.url+"/v1/rules/github-ssh-key-created/settings", keyA, `{"disabled":true}`); status != 200 {
		t.Fatalf("switching a pack rule off: %d %s", status, body)
	}

	// An SSH key and, a minute later, a ThreatInsight verdict, in both
	// tenants; acme has switched the SSH-key rule off. Event times an hour
	// back are evaluated without waiting for the tenant's watermark.
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	events := []client.Event{
		{ID: "k1", Action: "github.public_key.create", Time: at, Actor: client.Actor{ID: "dev1"},
			Metadata: map[string]any{"github_action": "public_key.create"}},
		{ID: "t1", Action: "okta.security.threat.detected", Outcome: "success", Time: at.Add(time.Minute),
			Actor: client.Actor{ID: "198.51.100.7"}, Context: client.Context{IP: "198.51.100.7"},
			Metadata: map[string]any{"okta_event_type": "security.threat.detected", "okta_reason": "Password Spray"}},
	}
	for _, c := range []*client.Client{acme, globex} {
		if _, err := c.Send(ctx, events...); err != nil {
			t.Fatal(err)
		}
	}
	rulesFired := func(c *client.Client) []string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			page, err := c.SearchFindings(ctx, client.FindingParams{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, f := range page.Findings {
				ids = append(ids, f.RuleID)
			}
			if slices.Contains(ids, "okta-threatinsight") || time.Now().After(deadline) {
				slices.Sort(ids)
				return ids
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := rulesFired(acme); !slices.Equal(got, []string{"okta-threatinsight"}) {
		t.Errorf("acme (SSH-key rule off): findings of %v, want okta-threatinsight alone", got)
	}
	if got := rulesFired(globex); !slices.Equal(got, []string{"github-ssh-key-created", "okta-threatinsight"}) {
		t.Errorf("globex: findings of %v, want github-ssh-key-created and okta-threatinsight", got)
	}

	cfg := config.Default()
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Detect.Packs = []string{"vendor-signals"}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if a, err := newApp(ctx, cfg); err == nil {
		_ = a.Run(stopped) // releases what New opened
		t.Fatal("a server with an unknown pack started")
	} else if !strings.Contains(err.Error(), "detect.packs") || !strings.Contains(err.Error(), `"vendor-signals"`) {
		t.Fatalf("unknown pack: %v; want the field and the name", err)
	}
}
