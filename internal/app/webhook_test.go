package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// receiver is a webhook receiver on 127.0.0.1 that can refuse deliveries
// (answer 503) and be stopped and started again on the same address.
type receiver struct {
	t    *testing.T
	addr string
	srv  *http.Server

	mu       sync.Mutex
	refuse   bool
	attempts int
	// got holds each delivery id's first body and headers; seen counts
	// every accepted request per id (a retry of a delivery already
	// received is the sender repeating itself, which the id makes
	// harmless).
	got  map[string]received
	seen map[string]int
}

type received struct {
	body                 []byte
	timestamp, signature string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, got: map[string]received{}, seen: map[string]int{}}
	r.start("127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
}

func (r *receiver) stop() {
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) setRefuse(v bool) {
	r.mu.Lock()
	r.refuse = v
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.refuse {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	id := req.Header.Get("Vigil-Delivery")
	if _, ok := r.got[id]; !ok {
		r.got[id] = received{body: body, timestamp: req.Header.Get("Vigil-Timestamp"), signature: req.Header.Get("Vigil-Signature")}
	}
	r.seen[id]++
	w.WriteHeader(http.StatusNoContent)
}

// items returns every item received, deduplicated by delivery id.
func (r *receiver) items(t *testing.T) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for id, rec := range r.got {
		var env struct {
			DeliveryID string           `json:"delivery_id"`
			Items      []map[string]any `json:"items"`
		}
		if err := json.Unmarshal(rec.body, &env); err != nil {
			t.Fatalf("delivery %s: %v: %s", id, err, rec.body)
		}
		if env.DeliveryID != id {
			t.Fatalf("delivery header %s, body %s", id, env.DeliveryID)
		}
		out = append(out, env.Items...)
	}
	return out
}

// signatureValid checks a Vigil-Signature value against secret.
func signatureValid(secret, timestamp, header string, body []byte) bool {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, part := range strings.Fields(header) {
		if v, ok := strings.CutPrefix(part, "v1="); ok && hmac.Equal([]byte(v), []byte(want)) {
			return true
		}
	}
	return false
}

// alertConfig is a node configuration whose webhook worker retries fast.
func alertConfig(t *testing.T, dir string) config.Config {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = dir
	cfg.Log.Level = "error"
	cfg.Alerts.AllowHTTP = true
	cfg.Alerts.AllowPrivateNetworks = true
	cfg.Alerts.Poll = 20 * time.Millisecond
	cfg.Alerts.BatchWindow = 100 * time.Millisecond
	cfg.Alerts.MinBackoff = 20 * time.Millisecond
	cfg.Alerts.MaxBackoff = 100 * time.Millisecond
	cfg.Alerts.RatePerMinute = 60_000
	cfg.Console.PublicURL = "https://vigil.example.com"
	return cfg
}

// runApp starts a node on cfg and returns it with a stop function that
// shuts it down and waits (also run at cleanup).
func runApp(t *testing.T, cfg config.Config) (*app.App, string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("app.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, "http://" + a.Addr(), stop
}

func finding(tenant, id string, sev audit.Severity, at time.Time) audit.Finding {
	return audit.Finding{ID: id, Tenant: tenant, RuleID: "brute-force", RuleName: "Brute force", Severity: sev, Status: audit.StatusOpen,
		GroupKey: id, ActorID: "alice", Explanation: "many failed logins", Evidence: []string{"e-" + id}, Count: 1,
		FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at}
}

// waitFor polls cond until it holds; the deadline only ends a test that
// would otherwise hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func createWebhook(t *testing.T, base, key, body string) (id, secret string) {
	t.Helper()
	status, b := raw(t, "POST", base+"/v1/webhooks", key, body)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", status, b)
	}
	var out struct {
		Webhook audit.Subscription `json:"webhook"`
		Secret  string             `json:"secret"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Secret == "" {
		t.Fatalf("create webhook: %v %s", err, b)
	}
	return out.Webhook.ID, out.Secret
}

// TestWebhookExactlyOnceAcrossRestarts is the acceptance test: a receiver
// refuses deliveries for a while, both the server and the receiver restart,
// and every finding change still arrives exactly once by delivery id, in a
// few batched requests, signed.
func TestWebhookExactlyOnceAcrossRestarts(t *testing.T) { testWebhookExactlyOnceAcrossRestarts(t) }

// TestWebhookExactlyOnceAcrossRestartsPostgres is TestWebhookExactlyOnceAcrossRestarts on the PostgreSQL store.
func TestWebhookExactlyOnceAcrossRestartsPostgres(t *testing.T) {
	testWebhookExactlyOnceAcrossRestarts(t, onPostgres(t))
}

func testWebhookExactlyOnceAcrossRestarts(t *testing.T, edit ...func(*config.Config)) {
	dir := t.TempDir()
	cfg := alertConfig(t, dir)
	for _, e := range edit {
		e(&cfg)
	}
	rcv := newReceiver(t)
	rcv.setRefuse(true)

	a, base, stop := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	_, secret := createWebhook(t, base, op, `{"tenant":"acme","url":"`+rcv.url()+`","kinds":["finding"]}`)
	// A second tenant's findings must not reach acme's webhook.
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"other"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}

	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// A wave of 300 findings, each stored twice (detection replaying after
	// a crash stores the same version again), one escalated.
	wave := func(st *app.Stores, from, to int) {
		var fs []audit.Finding
		for i := from; i < to; i++ {
			fs = append(fs, finding("acme", fmt.Sprintf("f-%03d", i), audit.SeverityMedium, at))
		}
		for range 2 {
			if err := st.Findings.UpsertFindings(ctx, fs); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Findings.UpsertFindings(ctx, []audit.Finding{finding("other", "f-other", audit.SeverityHigh, at)}); err != nil {
			t.Fatal(err)
		}
	}
	wave(a.Stores(), 0, 300)
	esc := finding("acme", "f-000", audit.SeverityCritical, at)
	if err := a.Stores().Findings.UpsertFindings(ctx, []audit.Finding{esc}); err != nil {
		t.Fatal(err)
	}
	// A replay storing the older, lower version and then the critical one
	// again escalates nothing more.
	for _, f := range []audit.Finding{finding("acme", "f-000", audit.SeverityMedium, at), esc} {
		if err := a.Stores().Findings.UpsertFindings(ctx, []audit.Finding{f}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "refused attempts", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.attempts >= 3
	})

	// Both sides go down; the server comes back first, with more findings
	// stored while the receiver is still away, then the receiver recovers
	// on the same address.
	stop()
	addr := rcv.addr
	rcv.stop()
	a2, base2, _ := runApp(t, cfg)
	wave(a2.Stores(), 300, 350)
	if status, b := raw(t, "PATCH", base2+"/v1/findings/f-001?tenant=acme", op, `{"status":"resolved","note":"password reset"}`); status != http.StatusOK {
		t.Fatalf("resolve: %d %s", status, b)
	}
	rcv.setRefuse(false)
	rcv.start(addr)

	want := map[string]bool{}
	for i := range 350 {
		want[fmt.Sprintf("f-%03d opened", i)] = true
	}
	want["f-000 escalated"] = true
	want["f-001 resolved"] = true
	waitFor(t, "every change delivered", func() bool { return len(rcv.items(t)) >= len(want) })
	time.Sleep(300 * time.Millisecond) // nothing more may arrive (a duplicate would)

	got := map[string]int{}
	for _, it := range rcv.items(t) {
		got[fmt.Sprintf("%s %s", it["id"], it["change"])]++
		if it["tenant"] != "acme" {
			t.Errorf("item of another tenant: %v", it)
		}
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("%s delivered %d times, want once", k, got[k])
		}
	}
	for k, n := range got {
		if !want[k] {
			t.Errorf("unexpected item %s (%d times)", k, n)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.got) > 20 {
		t.Errorf("%d requests for %d changes: batching did not happen", len(rcv.got), len(want))
	}
	for id, rec := range rcv.got {
		if !signatureValid(secret, rec.timestamp, rec.signature, rec.body) {
			t.Errorf("delivery %s: signature %q does not verify", id, rec.signature)
		}
	}
}

// seedWebhook stores a subscription of tenant directly.
func seedWebhook(t *testing.T, st *app.Stores, id, tenant, name string) {
	t.Helper()
	now := time.Now().UTC()
	sub := audit.Subscription{ID: id, Tenant: tenant, Name: name, URL: "https://hooks.example.com/" + id, Format: "json",
		Changes: []audit.LifecycleChange{audit.ChangeOpened}, Kinds: []string{audit.KindFinding}, SecretGen: 1, CreatedAt: now, UpdatedAt: now}
	if err := st.Alerts.CreateSubscription(t.Context(), sub, 0); err != nil {
		t.Fatal(err)
	}
}

// deadDelivery makes a dead letter of subscription sub (an outbox of one
// item overflowing) and returns its id.
func deadDelivery(t *testing.T, st *app.Stores, sub, tenant string, seq int64) string {
	t.Helper()
	ctx := t.Context()
	cur, err := st.Alerts.AlertCursor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items := []audit.OutboxItem{{SubscriptionID: sub, Tenant: tenant, Seq: seq, Doc: []byte(`{}`)}, {SubscriptionID: sub, Tenant: tenant, Seq: seq + 1, Doc: []byte(`{}`)}}
	before, err := st.Alerts.ListDeliveries(ctx, audit.DeliveryFilter{SubscriptionID: sub, Status: audit.DeliveryDead, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Alerts.Enqueue(ctx, cur, items, 1, 1, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	after, err := st.Alerts.ListDeliveries(ctx, audit.DeliveryFilter{SubscriptionID: sub, Status: audit.DeliveryDead, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range after {
		known := false
		for _, b := range before {
			known = known || b.ID == d.ID
		}
		if !known {
			return d.ID
		}
	}
	t.Fatalf("no dead letter made for %s", sub)
	return ""
}
