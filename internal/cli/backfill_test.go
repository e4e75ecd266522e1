package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/cli"
	"github.com/vigilhq/vigil/internal/config"
)

// hookItems is a webhook receiver on 127.0.0.1 keeping every item.
type hookItems struct {
	mu    sync.Mutex
	items []map[string]any
}

func (h *hookItems) serve(w http.ResponseWriter, r *http.Request) {
	var env struct {
		Items []map[string]any `json:"items"`
	}
	b, _ := io.ReadAll(r.Body)
	if json.Unmarshal(b, &env) == nil {
		h.mu.Lock()
		h.items = append(h.items, env.Items...)
		h.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookItems) all() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.items)
}

// backfillHistory is a month of alice's logins from France on one device,
// with a takeover on day 20: a login from Brazil on a new device, then
// the password, the e-mail address and MFA changed within 15 minutes.
func backfillHistory(start time.Time) string {
	var b strings.Builder
	b.WriteString("id,time,what,user,ip,country,device\n")
	for d := range 30 {
		at := start.AddDate(0, 0, d).Add(9 * time.Hour)
		fmt.Fprintf(&b, "l%d,%s,login,alice,82.64.10.7,FR,d1\n", d, at.Format(time.RFC3339))
		if d == 20 {
			at = at.Add(time.Hour)
			fmt.Fprintf(&b, "t1,%s,login,alice,177.10.20.30,BR,d2\n", at.Format(time.RFC3339))
			for i, what := range []string{"password", "email", "mfa"} {
				fmt.Fprintf(&b, "t%d,%s,%s,alice,177.10.20.30,BR,d2\n", i+2, at.Add(time.Duration(i+1)*5*time.Minute).Format(time.RFC3339), what)
			}
		}
	}
	return b.String()
}

const backfillMapping = `name: app
format: csv
time: {from: time}
id: {from: id}
action:
  from: what
  map: {login: auth.login.success, password: auth.password.changed, email: user.email.changed, mfa: auth.mfa.removed}
fields:
  actor.id: {from: user}
  target.id: {from: user, only: [user.email.changed]}
  context.ip: {from: ip}
  context.user_agent: {from: device, map: {d1: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "*": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"}}
  context.geo.country: {from: country}
  context.device_id: {from: device}
  context.auth_method: {value: password, only: [auth.login.success]}
  context.session_id: {from: id, prefix: s-, only: [auth.login.success]}
  metadata.factor: {value: totp, only: [auth.mfa.removed]}
`

// TestImportBackfill: a month of history with a takeover inside, imported
// with --backfill, builds alice's profile (a later login from the usual
// place and device raises nothing; one from a new country on a new device
// is new-location, alerted) and stores the past findings flagged
// "silent" with no webhook for them; the same history imported with
// --backfill --alert-past into another tenant is alerted, flagged "alert".
func TestImportBackfill(t *testing.T) {
	hooks := &hookItems{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(hooks.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "error"
	cfg.Alerts.AllowHTTP = true
	cfg.Alerts.AllowPrivateNetworks = true
	cfg.Alerts.Poll = 20 * time.Millisecond
	cfg.Alerts.BatchWindow = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	env := map[string]string{"VIGIL_SERVER": a.Addr(), "VIGIL_API_KEY": a.BootstrapKey}
	for _, id := range []string{"acme", "beta"} {
		if err := a.Stores().Tenants.CreateTenant(t.Context(), tenant(id)); err != nil {
			t.Fatal(err)
		}
		body := `{"tenant":"` + id + `","url":"http://` + ln.Addr().String() + `/hook","kinds":["finding"]}`
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+a.Addr()+"/v1/webhooks", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+a.BootstrapKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create webhook: %d", resp.StatusCode)
		}
	}

	dir := t.TempDir()
	mapFile := filepath.Join(dir, "app.yaml")
	histFile := filepath.Join(dir, "history.csv")
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -35)
	if err := os.WriteFile(mapFile, []byte(backfillMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(histFile, []byte(backfillHistory(start)), 0o600); err != nil {
		t.Fatal(err)
	}
	findings := func(tn string) []audit.Finding {
		t.Helper()
		if err := a.FlushDetection(t.Context()); err != nil {
			t.Fatal(err)
		}
		p, err := a.Stores().Findings.SearchFindings(t.Context(), audit.FindingFilter{Tenant: tn, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return p.Findings
	}
	rules := func(fs []audit.Finding) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.RuleID+":"+f.Backfill)
		}
		slices.Sort(out)
		return out
	}

	r := run(t, env, "", "import", "--tenant", "acme", "--quiet", "--backfill", "--mapping", mapFile, "csv", histFile)
	if r.code != 0 || !strings.Contains(r.stdout, "34 accepted, 0 duplicates, 0 rejected") {
		t.Fatalf("backfill: %+v", r)
	}
	past := findings("acme")
	if !slices.Contains(rules(past), "takeover-sequence:silent") || !slices.Contains(rules(past), "new-location:silent") {
		for _, f := range past {
			t.Log(f.RuleID, f.Explanation)
		}
		t.Fatalf("the takeover in the history raised %v", rules(past))
	}
	for _, f := range past {
		if f.Backfill != audit.BackfillSilent {
			t.Errorf("past finding %s %s not flagged silent: %q", f.ID, f.RuleID, f.Backfill)
		}
	}

	// Live logins after the history: the usual place and device, then a
	// new country on a new device.
	live := func(id, ip, country, device string, at time.Time) {
		t.Helper()
		csv := fmt.Sprintf("id,time,what,user,ip,country,device\n%s,%s,login,alice,%s,%s,%s\n", id, at.Format(time.RFC3339), ip, country, device)
		if r := run(t, env, csv, "import", "--tenant", "acme", "--quiet", "--mapping", mapFile, "csv", "-"); r.code != 0 {
			t.Fatalf("live login %s: %+v", id, r)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	live("live1", "82.64.10.7", "FR", "d1", now.Add(-10*time.Minute))
	if got := findings("acme"); len(got) != len(past) {
		t.Fatalf("a login from the usual place raised %v (history: %v)", rules(got), rules(past))
	}
	live("live2", "126.1.2.3", "JP", "d3", now.Add(-5*time.Minute))
	var fresh []audit.Finding
	for _, f := range findings("acme") {
		if !slices.ContainsFunc(past, func(p audit.Finding) bool { return p.ID == f.ID }) {
			fresh = append(fresh, f)
		}
	}
	if !slices.Contains(rules(fresh), "new-location:") {
		t.Fatalf("the login from Japan raised %v", rules(fresh))
	}

	// The live finding is alerted; nothing of the past was (its changes
	// came before, in order).
	waitFor := func(what string, cond func([]map[string]any) bool) []map[string]any {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			items := hooks.all()
			if cond(items) {
				return items
			}
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s; items: %v", what, items)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	items := waitFor("the live new-location alert", func(items []map[string]any) bool {
		return slices.ContainsFunc(items, func(it map[string]any) bool { return it["tenant"] == "acme" && it["rule_id"] == "new-location" })
	})
	for _, it := range items {
		if slices.ContainsFunc(past, func(p audit.Finding) bool { return p.ID == it["id"] }) || it["backfill"] != nil {
			t.Errorf("a finding of the past was alerted: %v", it)
		}
	}

	// The same history with --alert-past is alerted, flagged.
	r = run(t, env, "", "import", "--tenant", "beta", "--quiet", "--backfill", "--alert-past", "--mapping", mapFile, "csv", histFile)
	if r.code != 0 || !strings.Contains(r.stdout, "34 accepted") {
		t.Fatalf("backfill --alert-past: %+v", r)
	}
	betaPast := findings("beta")
	if !slices.Contains(rules(betaPast), "takeover-sequence:alert") {
		t.Fatalf("beta's history raised %v", rules(betaPast))
	}
	waitFor("the past takeover alerted for beta", func(items []map[string]any) bool {
		return slices.ContainsFunc(items, func(it map[string]any) bool {
			return it["tenant"] == "beta" && it["rule_id"] == "takeover-sequence" && it["backfill"] == audit.BackfillAlert
		})
	})

	if r := run(t, env, "", "import", "--tenant", "beta", "--alert-past", "--mapping", mapFile, "csv", histFile); r.code != cli.ExitUsage {
		t.Fatalf("--alert-past without --backfill: %+v", r)
	}
}
