package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// pdReceiver stands in for PagerDuty's Events API v2 on 127.0.0.1: it
// answers 202 to well-formed events and records them.
type pdReceiver struct {
	mu     sync.Mutex
	events []map[string]any
	url    string
}

func newPDReceiver(t *testing.T) *pdReceiver {
	r := &pdReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var ev map[string]any
		if req.URL.Path != "/v2/enqueue" || json.Unmarshal(b, &ev) != nil || ev["routing_key"] == nil || ev["dedup_key"] == nil {
			http.Error(w, `{"status":"invalid event"}`, http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"success","message":"Event processed"}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.url = "http://" + ln.Addr().String() + "/v2/enqueue"
	return r
}

func (r *pdReceiver) got() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.events...)
}

// TestWebhookPagerDuty: a pagerduty webhook pages on high and critical
// findings only (its default), one Events API v2 event per finding with a
// stable dedup key, and resolves the page when the finding is resolved.
// The routing key reaches PagerDuty but is never shown by the API nor
// stored in plain text.
func TestWebhookPagerDuty(t *testing.T) {
	dir := t.TempDir()
	cfg := alertConfig(t, dir)
	pd := newPDReceiver(t)
	a, base, stop := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	const routingKey = "R0ut1ngKeyOfTheSecurityService42"
	if status, b := raw(t, "POST", base+"/v1/webhooks", op, `{"tenant":"acme","format":"pagerduty"}`); status != http.StatusBadRequest || !strings.Contains(string(b), "routing_key") {
		t.Fatalf("a pagerduty webhook without a routing key: %d %s", status, b)
	}
	if status, b := raw(t, "POST", base+"/v1/webhooks", op, `{"tenant":"acme","url":"`+pd.url+`","format":"json","routing_key":"abc"}`); status != http.StatusBadRequest || !strings.Contains(string(b), "routing_key") {
		t.Fatalf("a routing key on a json webhook: %d %s", status, b)
	}
	id, _ := createWebhook(t, base, op, `{"tenant":"acme","url":"`+pd.url+`","format":"pagerduty","kinds":["finding"],"routing_key":"`+routingKey+`"}`)
	status, b := raw(t, "GET", base+"/v1/webhooks/"+id, op, "")
	if status != http.StatusOK || strings.Contains(string(b), routingKey) || strings.Contains(string(b), "sealed") ||
		!strings.Contains(string(b), `"has_credential":true`) || !strings.Contains(string(b), `"min_severity":"high"`) {
		t.Fatalf("GET webhook: %d %s", status, b)
	}

	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := a.Stores()
	if err := st.Findings.UpsertFindings(ctx, []audit.Finding{
		finding("acme", "f-high", audit.SeverityHigh, at), finding("acme", "f-medium", audit.SeverityMedium, at),
		finding("acme", "f-crit", audit.SeverityCritical, at),
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two triggers", func() bool { return len(pd.got()) >= 2 })
	if status, b := raw(t, "PATCH", base+"/v1/findings/f-high?tenant=acme", op, `{"status":"resolved","note":"reset and revoked"}`); status != http.StatusOK {
		t.Fatalf("resolve: %d %s", status, b)
	}
	waitFor(t, "the resolve", func() bool { return len(pd.got()) >= 3 })
	time.Sleep(300 * time.Millisecond) // nothing more may arrive

	evs := pd.got()
	byAction := map[string][]map[string]any{}
	for _, ev := range evs {
		if ev["routing_key"] != routingKey {
			t.Errorf("routing key %v", ev["routing_key"])
		}
		byAction[ev["event_action"].(string)] = append(byAction[ev["event_action"].(string)], ev)
	}
	if len(evs) != 3 || len(byAction["trigger"]) != 2 || len(byAction["resolve"]) != 1 {
		t.Fatalf("events %v: want two triggers (high, critical) and one resolve", evs)
	}
	sev := map[string]string{}
	for _, ev := range byAction["trigger"] {
		p := ev["payload"].(map[string]any)
		sev[ev["dedup_key"].(string)] = p["severity"].(string)
		if p["source"] != "vigil/acme" || p["component"] != "brute-force" || !strings.Contains(p["summary"].(string), "Brute force") ||
			p["custom_details"].(map[string]any)["explanation"] != "many failed logins" {
			t.Errorf("trigger payload %v", p)
		}
		if links, _ := ev["links"].([]any); len(links) != 1 || !strings.HasPrefix(links[0].(map[string]any)["href"].(string), "https://vigil.example.com/findings/") {
			t.Errorf("trigger links %v", ev["links"])
		}
	}
	if sev["vigil/finding/acme/f-high"] != "error" || sev["vigil/finding/acme/f-crit"] != "critical" {
		t.Fatalf("trigger severities by dedup key %v", sev)
	}
	if byAction["resolve"][0]["dedup_key"] != "vigil/finding/acme/f-high" {
		t.Fatalf("resolve %v does not close the high finding's page", byAction["resolve"][0])
	}

	// Nothing on disk holds the routing key in plain text.
	stop()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), routingKey) {
			return fmt.Errorf("%s holds the routing key in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
