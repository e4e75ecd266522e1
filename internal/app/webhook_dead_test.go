package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestWebhookDeadLetterReplay: a receiver that refuses past alerts.retry_for
// leaves a dead letter; listing ?status=dead finds it and replaying it
// delivers it, with the same delivery id, once the receiver is back.
func TestWebhookDeadLetterReplay(t *testing.T) {
	cfg := alertConfig(t, t.TempDir())
	cfg.Alerts.RetryFor = 300 * time.Millisecond
	rcv := newReceiver(t)
	rcv.setRefuse(true)
	a, base, _ := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	_, adminKey := tenantKey(t, base, op, "acme")
	id, secret := createWebhook(t, base, adminKey, `{"url":"`+rcv.url()+`"}`)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := a.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{finding("acme", "f-1", audit.SeverityHigh, at)}); err != nil {
		t.Fatal(err)
	}
	var dead []audit.Delivery
	waitFor(t, "a dead letter", func() bool {
		status, b := raw(t, "GET", base+"/v1/webhooks/"+id+"/deliveries?status=dead", adminKey, "")
		if status != http.StatusOK {
			t.Fatalf("list dead letters: %d %s", status, b)
		}
		var out struct{ Deliveries []audit.Delivery }
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		dead = out.Deliveries
		return len(dead) > 0
	})
	if len(dead) != 1 || dead[0].Attempts < 2 || dead[0].LastStatus != http.StatusServiceUnavailable || dead[0].Items != 1 {
		t.Fatalf("dead letters: %+v", dead)
	}
	rcv.mu.Lock()
	delivered := len(rcv.got)
	rcv.mu.Unlock()
	if delivered != 0 {
		t.Fatalf("a refused delivery was recorded as received")
	}
	// A pending or delivered delivery is not replayed.
	rcv.setRefuse(false)
	status, b := raw(t, "POST", base+"/v1/deliveries/"+dead[0].ID+"/replay", adminKey, "")
	if status != http.StatusOK {
		t.Fatalf("replay: %d %s", status, b)
	}
	waitFor(t, "the replayed delivery", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		_, ok := rcv.got[dead[0].ID]
		return ok
	})
	rcv.mu.Lock()
	rec := rcv.got[dead[0].ID]
	rcv.mu.Unlock()
	if !signatureValid(secret, rec.timestamp, rec.signature, rec.body) || !strings.Contains(string(rec.body), `"f-1"`) {
		t.Fatalf("replayed body %s signature %s", rec.body, rec.signature)
	}
	waitFor(t, "the delivery recorded as delivered", func() bool {
		d, err := a.Stores().Alerts.GetDelivery(t.Context(), dead[0].ID)
		return err == nil && d.Status == audit.DeliveryDelivered
	})
	if status, b := raw(t, "POST", base+"/v1/deliveries/"+dead[0].ID+"/replay", adminKey, ""); status != http.StatusBadRequest {
		t.Fatalf("replay of a delivered delivery: %d %s", status, b)
	}
}

// TestWebhookSSRFGuard: without alerts.allow_private_networks a literal
// loopback URL is refused when the webhook is made, and a name resolving to
// loopback (localhost) is refused when connecting: the receiver hears
// nothing and the delivery records why.
func TestWebhookSSRFGuard(t *testing.T) {
	cfg := alertConfig(t, t.TempDir())
	cfg.Alerts.AllowPrivateNetworks = false
	rcv := newReceiver(t)
	a, base, _ := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	for _, u := range []string{rcv.url(), "http://[::1]:1/x", "http://169.254.169.254/latest/meta-data"} {
		status, b := raw(t, "POST", base+"/v1/webhooks", op, `{"tenant":"acme","url":"`+u+`"}`)
		if status != http.StatusBadRequest || !strings.Contains(string(b), `"field":"url"`) {
			t.Errorf("webhook to %s: %d %s, want 400 on url", u, status, b)
		}
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(rcv.url(), "http://127.0.0.1"), ":")
	id, _ := createWebhook(t, base, op, `{"tenant":"acme","url":"http://localhost:`+port+`"}`)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := a.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{finding("acme", "f-1", audit.SeverityHigh, at)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refused attempt", func() bool {
		ds, err := a.Stores().Alerts.ListDeliveries(t.Context(), audit.DeliveryFilter{SubscriptionID: id})
		return err == nil && len(ds) == 1 && ds[0].Attempts > 0
	})
	ds, _ := a.Stores().Alerts.ListDeliveries(t.Context(), audit.DeliveryFilter{SubscriptionID: id})
	if !strings.Contains(ds[0].LastError, "private, loopback") {
		t.Errorf("last error %q", ds[0].LastError)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.attempts != 0 {
		t.Errorf("the receiver on loopback was reached %d times", rcv.attempts)
	}
}

// TestWebhookSecretRotation: after a rotation with an overlap, requests
// carry a signature for the new and the old secret; the old secret alone
// no longer verifies once the overlap is ended.
func TestWebhookSecretRotation(t *testing.T) {
	cfg := alertConfig(t, t.TempDir())
	rcv := newReceiver(t)
	a, base, _ := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	id, old := createWebhook(t, base, op, `{"tenant":"acme","url":"`+rcv.url()+`"}`)
	rotate := func(overlap string) string {
		status, b := raw(t, "POST", base+"/v1/webhooks/"+id+"/rotate-secret", op, `{"overlap":"`+overlap+`"}`)
		var out struct{ Secret string }
		if status != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Secret == "" {
			t.Fatalf("rotate: %d %s", status, b)
		}
		return out.Secret
	}
	fresh := rotate("1h")
	if fresh == old {
		t.Fatal("rotation kept the secret")
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	send := func(fid string) received {
		if err := a.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{finding("acme", fid, audit.SeverityHigh, at)}); err != nil {
			t.Fatal(err)
		}
		var rec received
		waitFor(t, "delivery of "+fid, func() bool {
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			for _, r := range rcv.got {
				if strings.Contains(string(r.body), `"`+fid+`"`) {
					rec = r
					return true
				}
			}
			return false
		})
		return rec
	}
	rec := send("f-1")
	if len(strings.Fields(rec.signature)) != 2 || !signatureValid(fresh, rec.timestamp, rec.signature, rec.body) ||
		!signatureValid(old, rec.timestamp, rec.signature, rec.body) {
		t.Fatalf("during the overlap: %q", rec.signature)
	}
	newest := rotate("0s")
	rec = send("f-2")
	if len(strings.Fields(rec.signature)) != 1 || !signatureValid(newest, rec.timestamp, rec.signature, rec.body) ||
		signatureValid(fresh, rec.timestamp, rec.signature, rec.body) {
		t.Fatalf("after an overlap of 0s: %q", rec.signature)
	}
	// Tampering with the body or the timestamp breaks the signature.
	if signatureValid(newest, rec.timestamp, rec.signature, append([]byte(" "), rec.body...)) ||
		signatureValid(newest, rec.timestamp+"1", rec.signature, rec.body) {
		t.Fatal("a tampered request verifies")
	}
}

// tenantKey mints an admin key of tenant through the API.
func tenantKey(t *testing.T, base, op, tenant string) (string, string) {
	t.Helper()
	status, b := raw(t, "POST", base+"/v1/keys", op, `{"tenant":"`+tenant+`","name":"admin","scopes":["admin"]}`)
	var out struct {
		Key    struct{ ID string }
		Secret string
	}
	if status != http.StatusCreated || json.Unmarshal(b, &out) != nil {
		t.Fatalf("create key: %d %s", status, b)
	}
	return out.Key.ID, out.Secret
}
