package app_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestWebhookURLIsSealed: a receiver URL whose path is a credential (as
// Slack's and Teams' are) is stored encrypted: answers show its scheme and
// host, deliveries still reach the whole URL, no file of the data directory
// holds the path, and a subscription stored with a plain URL by an older
// version is sealed when the server starts.
func TestWebhookURLIsSealed(t *testing.T) {
	dir := t.TempDir()
	cfg := alertConfig(t, dir)
	rcv := newReceiver(t)
	a, base, stop := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	const token = "T0001/B0002/sEcReTtOkEnInThePath"
	id, _ := createWebhook(t, base, op, `{"tenant":"acme","url":"`+rcv.url()+`/`+token+`","kinds":["finding"]}`)
	for _, path := range []string{"/v1/webhooks/" + id, "/v1/webhooks?tenant=acme"} {
		status, b := raw(t, "GET", base+path, op, "")
		if status != http.StatusOK || strings.Contains(string(b), token) || strings.Contains(string(b), "sealed") ||
			!strings.Contains(string(b), `"url":"http://`+rcv.addr+`/…"`) {
			t.Fatalf("GET %s: %d %s", path, status, b)
		}
	}
	// Changing another field keeps the URL working.
	if status, b := raw(t, "PATCH", base+"/v1/webhooks/"+id, op, `{"name":"chat"}`); status != http.StatusOK || strings.Contains(string(b), token) {
		t.Fatalf("PATCH: %d %s", status, b)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := a.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{finding("acme", "f-1", audit.SeverityHigh, at)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery", func() bool { return len(rcv.items(t)) == 1 })

	// An older version's plain URL is sealed at the next start. (Its plain
	// text may linger in free database pages until SQLite reuses them, so
	// the scan below looks only for the URL that was never stored plainly.)
	now := time.Now().UTC()
	legacy := audit.Subscription{ID: "wh-legacy", Tenant: "acme", URL: rcv.url() + "/legacy-plain-path", Format: "json",
		Changes: []audit.LifecycleChange{audit.ChangeOpened}, Kinds: []string{audit.KindFinding}, SecretGen: 1, CreatedAt: now, UpdatedAt: now}
	if err := a.Stores().Alerts.CreateSubscription(t.Context(), legacy, 0); err != nil {
		t.Fatal(err)
	}
	stop()
	a2, _, stop2 := runApp(t, cfg)
	waitFor(t, "the legacy URL sealed", func() bool {
		sub, err := a2.Stores().Alerts.GetSubscription(t.Context(), "wh-legacy")
		return err == nil && sub.SealedURL != "" && !strings.Contains(sub.URL, "legacy-plain-path")
	})
	if err := a2.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{finding("acme", "f-2", audit.SeverityHigh, at)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deliveries to both", func() bool { return len(rcv.items(t)) == 3 })
	stop2()

	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "sEcReTtOkEn") {
			return fmt.Errorf("%s holds the URL's token in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
