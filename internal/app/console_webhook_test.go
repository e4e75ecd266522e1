package app_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

var shownSecret = regexp.MustCompile(`id="secret" class="mono" readonly value="([^"]+)"`)

// consoleWebhooks lists a tenant's webhooks through the API.
func consoleWebhooks(t *testing.T, base, key string) []audit.Subscription {
	t.Helper()
	status, b := raw(t, "GET", base+"/v1/webhooks", key, "")
	var out struct {
		Webhooks []audit.Subscription `json:"webhooks"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil {
		t.Fatalf("list webhooks: %d %s", status, b)
	}
	return out.Webhooks
}

// TestConsoleWebhooks manages a tenant's webhooks from the settings page:
// created against a local receiver with its signing secret shown once (and
// the receiver's path, which may carry a token, never shown), the secret
// the one deliveries are signed with, paused, rotated, deleted; the
// service's URL checks apply; only admin sessions reach the section; and
// no session, not even an operator's, reaches another tenant's webhook.
func TestConsoleWebhooks(t *testing.T) {
	cfg := alertConfig(t, t.TempDir())
	cfg.Alerts.AllowPrivateNetworks = false
	cfg.Alerts.AllowCIDRs = []string{"127.0.0.1/32"} // the receiver, and nothing else private
	a, base, _ := runApp(t, cfg)
	n := &node{app: a, url: base, operator: a.BootstrapKey}
	var err error
	if n.op, err = client.New(base, client.WithAPIKey(a.BootstrapKey)); err != nil {
		t.Fatal(err)
	}
	_, keyA := n.tenantClient(t, "tenant-a")
	_, keyB := n.tenantClient(t, "tenant-b")
	rcv := newReceiver(t)
	token := "T0KEN-in-the-path"
	hookURL := rcv.url() + "/" + token

	b := newBrowser(t, base)
	b.signIn(keyA)
	resp, page := b.get("/settings")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="webhooks"`) || !strings.Contains(page, "No webhooks yet") {
		t.Fatalf("settings: %d %s", resp.StatusCode, page)
	}
	// The service's checks apply: a private address outside alerts.allow_cidrs
	// is refused, naming the field; nothing is created.
	resp, page = b.post("/settings/webhooks", url.Values{"url": {"http://10.1.2.3/hook"}, "format": {"json"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "private") {
		t.Fatalf("private receiver: %d %s", resp.StatusCode, page)
	}
	resp, page = b.post("/settings/webhooks", url.Values{"url": {"https://hooks.example.com/x"}, "format": {"carrier-pigeon"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "format must be one of") {
		t.Fatalf("bad format: %d %s", resp.StatusCode, page)
	}
	if ws := consoleWebhooks(t, base, keyA); len(ws) != 0 {
		t.Fatalf("refused forms created webhooks: %+v", ws)
	}
	// Without the CSRF token nothing is created.
	if resp, _ = b.do("POST", "/settings/webhooks", url.Values{"url": {hookURL}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("create without CSRF: %d", resp.StatusCode)
	}

	b.get("/settings")
	resp, page = b.post("/settings/webhooks", url.Values{"name": {"SOC on-call"}, "url": {hookURL}, "format": {"json"},
		"min_severity": {"medium"}, "changes": {"opened", "resolved"}, "kinds": {"finding"}})
	m := shownSecret.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusCreated || m == nil || !strings.HasPrefix(m[1], "whsec_") || !strings.Contains(page, "shown only now") {
		t.Fatalf("create: %d %s", resp.StatusCode, page)
	}
	secret := m[1]
	if strings.Contains(page, token) {
		t.Fatal("the answer to the create shows the receiver URL's path")
	}
	ws := consoleWebhooks(t, base, keyA)
	if len(ws) != 1 || ws[0].Name != "SOC on-call" || ws[0].Tenant != "tenant-a" || ws[0].MinSeverity != audit.SeverityMedium ||
		len(ws[0].Changes) != 2 || len(ws[0].Kinds) != 1 || ws[0].Kinds[0] != "finding" {
		t.Fatalf("created webhook %+v", ws)
	}
	id := ws[0].ID

	// The settings page lists it by scheme and host, never with its path
	// or the secret.
	_, page = b.get("/settings")
	for _, want := range []string{"SOC on-call", id, "http://" + rcv.addr + "/…", "finding: opened, resolved; medium and above", "none yet"} {
		if !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("settings lack %q", want)
		}
	}
	if strings.Contains(page, token) || strings.Contains(page, secret) {
		t.Fatal("the settings page shows the receiver's path or the signing secret")
	}

	// The secret shown is the one deliveries are signed with, and the
	// delivery's state reaches the page.
	at := time.Now().UTC()
	if err := a.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{finding("tenant-a", "f-1", audit.SeverityHigh, at)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery", func() bool { return len(rcv.items(t)) == 1 })
	rcv.mu.Lock()
	for _, rec := range rcv.got {
		if !signatureValid(secret, rec.timestamp, rec.signature, rec.body) {
			t.Error("the delivery is not signed with the secret the console showed")
		}
	}
	rcv.mu.Unlock()
	waitFor(t, "the delivery on the settings page", func() bool { _, page = b.get("/settings"); return strings.Contains(page, "delivered") })

	// Pause and resume.
	if resp, page = b.post("/settings/webhooks/"+id+"/toggle", url.Values{"disabled": {"true"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", resp.StatusCode, page)
	}
	if ws = consoleWebhooks(t, base, keyA); !ws[0].Disabled {
		t.Fatal("the webhook is not paused")
	}
	b.get("/settings")
	b.post("/settings/webhooks/"+id+"/toggle", url.Values{"disabled": {"false"}})
	if ws = consoleWebhooks(t, base, keyA); ws[0].Disabled {
		t.Fatal("the webhook is not resumed")
	}

	// Rotating shows a new secret, once.
	b.get("/settings")
	resp, page = b.post("/settings/webhooks/"+id+"/rotate", url.Values{})
	m = shownSecret.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || m[1] == secret || !strings.HasPrefix(m[1], "whsec_") || !strings.Contains(page, "both secrets until") {
		t.Fatalf("rotate: %d %s", resp.StatusCode, page)
	}
	if ws = consoleWebhooks(t, base, keyA); ws[0].SecretGen != 2 {
		t.Fatalf("secret generation after rotation: %d", ws[0].SecretGen)
	}
	if _, page = b.get("/settings"); strings.Contains(page, m[1]) {
		t.Fatal("the settings page shows the rotated secret")
	}

	// Tenant B's webhook is out of reach of A's session, and of an
	// operator's session working on tenant A, by id.
	idB, _ := createWebhook(t, base, keyB, `{"url":"https://hooks.example.com/b","name":"b-hook-marker"}`)
	op := newBrowser(t, base)
	op.signIn(a.BootstrapKey)
	for _, br := range []*browser{b, op} {
		_, page = br.get("/settings")
		if strings.Contains(page, idB) || strings.Contains(page, "b-hook-marker") {
			t.Fatal("tenant A's settings show tenant B's webhook")
		}
		for _, action := range []string{"delete", "rotate", "toggle"} {
			if resp, page := br.post("/settings/webhooks/"+idB+"/"+action, url.Values{"disabled": {"true"}}); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s of B's webhook from A's session: %d %s", action, resp.StatusCode, page)
			}
		}
	}
	if wb := consoleWebhooks(t, base, keyB); len(wb) != 1 || wb[0].SecretGen != 1 || wb[0].Disabled {
		t.Fatalf("tenant B's webhook changed: %+v", wb)
	}

	// A key without admin sees no webhooks and cannot create one; nor can
	// a viewer link.
	_, rulesKey := n.tenantClient(t, "tenant-a", "events:read", "rules:write")
	rb := newBrowser(t, base)
	rb.signIn(rulesKey)
	if _, page = rb.get("/settings"); strings.Contains(page, `id="webhooks"`) {
		t.Error("a rules:write key is shown the webhooks")
	}
	if resp, _ = rb.post("/settings/webhooks", url.Values{"url": {hookURL}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("create by a rules:write key: %d", resp.StatusCode)
	}
	if resp, _ = rb.post("/settings/webhooks/"+id+"/delete", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("delete by a rules:write key: %d", resp.StatusCode)
	}
	vb := viewerBrowser(t, base, keyA)
	if resp, _ = vb.post("/settings/webhooks/"+id+"/delete", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("delete by a viewer: %d", resp.StatusCode)
	}

	// Deleting it.
	b.get("/settings")
	if resp, page = b.post("/settings/webhooks/"+id+"/delete", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", resp.StatusCode, page)
	}
	if ws = consoleWebhooks(t, base, keyA); len(ws) != 0 {
		t.Fatalf("after delete: %+v", ws)
	}
}

// TestConsoleWebhooksOff: with alerts off the section says so.
func TestConsoleWebhooksOff(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Alerts.Enabled = false })
	_, key := n.tenantClient(t, "acme")
	b := newBrowser(t, n.url)
	b.signIn(key)
	if _, page := b.get("/settings"); !strings.Contains(page, "Webhooks are not enabled on this server") {
		t.Fatalf("settings with alerts off: %s", page)
	}
	if resp, page := b.post("/settings/webhooks", url.Values{"url": {"https://hooks.example.com/x"}}); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("create with alerts off: %d %s", resp.StatusCode, page)
	}
}

// viewerBrowser is a browser signed in with a fresh viewer link of the
// tenant of an admin key.
func viewerBrowser(t *testing.T, base, adminKey string) *browser {
	t.Helper()
	status, body := raw(t, "POST", base+"/v1/viewer-tokens", adminKey, `{"ttl":"1h"}`)
	var minted struct{ Path string }
	if status != http.StatusCreated || json.Unmarshal(body, &minted) != nil {
		t.Fatalf("mint viewer token: %d %s", status, body)
	}
	vb := newBrowser(t, base)
	if resp, _ := vb.get(minted.Path); resp.StatusCode != http.StatusOK {
		t.Fatalf("embed: %d", resp.StatusCode)
	}
	vb.get("/findings")
	return vb
}
