// Package console_test drives the web console in a real headless Chromium
// (Debian's /usr/bin/chromium, from Node with playwright-core) against a
// real Vigil server on 127.0.0.1 holding a simulated SaaS: the demo's
// simulator replays a week of logins for two tenants and runs its
// account-takeover campaigns, so every page shows what a newcomer would see.
//
// Setup, once: apt-get install chromium; npm ci (in this directory). The
// test skips without them, unless CI is set, where it fails. With
// -screenshots it writes every page at 1280 px and phone width into
// docs/screenshots/; otherwise into a temporary directory.
package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/sim"
)

var screenshots = flag.Bool("screenshots", false, "write the console's screenshots into docs/screenshots")

const chromium = "/usr/bin/chromium"

// need skips (or, under CI, fails) when a prerequisite is missing.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("browser tests need %s (CI is set)", what)
	}
	t.Skipf("skipping the browser tests: %s is missing (apt-get install chromium; npm ci in e2e/console)", what)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// scenario is what the Node script needs to know about the seeded server.
type scenario struct {
	Base        string `json:"base"`
	Shots       string `json:"shots"`
	AdminKey    string `json:"admin_key"`
	OperatorKey string `json:"operator_key"`
	Viewer      string `json:"viewer"`
	ReadOnly    string `json:"read_only_viewer"`
	OtherViewer string `json:"other_viewer"`
	Expired     string `json:"expired"`
	Revoked     string `json:"revoked"`
	Tampered    string `json:"tampered"`
	Tenant      string `json:"tenant"`
	Other       struct {
		Tenant   string `json:"tenant"`
		Finding  string `json:"finding"`
		Event    string `json:"event"`
		Actor    string `json:"actor"`
		IP       string `json:"ip"`
		Session  string `json:"session"`
		Incident string `json:"incident"`
	} `json:"other"`
}

func TestConsoleInChromium(t *testing.T) {
	need(t, exists(chromium), chromium)
	need(t, exists("node_modules/playwright-core") && exists("node_modules/axe-core"), "e2e/console/node_modules (npm ci)")
	_, err := exec.LookPath("node")
	need(t, err == nil, "node")

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	hosting := filepath.Join(dir, "hosting.txt")
	if err := os.WriteFile(hosting, []byte(sim.Hosting.Block.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = filepath.Join(dir, "data")
	cfg.Enrich.Lists = []config.IPList{{Name: "demo-hosting", Kind: "datacenter", Path: hosting}}
	cfg.Log.Level = "warn"
	// The settings scenario makes a webhook to a receiver on this host.
	cfg.Alerts.AllowHTTP, cfg.Alerts.AllowCIDRs = true, []string{"127.0.0.1/32"}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		stop()
		t.Fatal(err)
	}
	defer logf.Close()
	a, err := app.New(runCtx, cfg, app.Options{Stderr: logf})
	if err != nil {
		stop()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})
	base := "http://" + a.Addr()
	sc := seed(ctx, t, a, base)

	sc.Shots = filepath.Join(dir, "shots")
	if *screenshots {
		sc.Shots, _ = filepath.Abs("../../docs/screenshots")
	}
	if err := os.MkdirAll(sc.Shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sc)
	scFile := filepath.Join(dir, "scenario.json")
	if err := os.WriteFile(scFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", "console.mjs", scFile)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", out)
	if err != nil {
		serverLog, _ := os.ReadFile(logf.Name())
		t.Fatalf("browser scenarios failed: %v\nserver log:\n%s", err, serverLog)
	}
	shots, _ := filepath.Glob(filepath.Join(sc.Shots, "*.png"))
	if len(shots) < 20 {
		t.Fatalf("%d screenshots written, want every page at two widths", len(shots))
	}
}

// seed creates two tenants with a simulated week of logins and the demo's
// attack campaigns, waits until everything is detected and stored, and
// mints the keys and viewer tokens the scenarios use.
func seed(ctx context.Context, t *testing.T, a *app.App, base string) scenario {
	t.Helper()
	op, err := client.New(base, client.WithAPIKey(a.BootstrapKey))
	if err != nil {
		t.Fatal(err)
	}
	tenants := []string{"acme", "globex"}
	for _, id := range tenants {
		if _, err := op.CreateTenant(ctx, client.CreateTenantRequest{ID: id, Name: strings.ToUpper(id[:1]) + id[1:] + " Inc."}); err != nil {
			t.Fatal(err)
		}
	}
	world := sim.NewWorld(7, tenants, 60)
	now := time.Now().UTC()
	events := world.History(now.Add(-time.Hour), 5)
	for _, c := range world.Campaigns(now) {
		events = append(events, c.Events...)
	}
	events = append(events, world.Live(now, 30)...)
	slices.SortStableFunc(events, func(a, b client.Event) int { return a.Time.Compare(b.Time) })
	for start := 0; start < len(events); start += 2000 {
		res, err := op.Send(ctx, events[start:min(start+2000, len(events))]...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rejected > 0 {
			t.Fatalf("the server rejected simulated events: %+v", res.Results[0])
		}
	}
	st := a.Stores().Stream.(audit.StreamStats)
	for {
		last, committed, err := st.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if committed >= last {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("seeded %d simulated events", len(events))

	var sc scenario
	sc.Base, sc.Tenant, sc.OperatorKey = base, "acme", a.BootstrapKey
	admin, err := op.CreateKey(ctx, client.CreateKeyRequest{Tenant: "acme", Name: "console admin", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	sc.AdminKey = string(admin.Secret)
	secret, err := a.Stores().State.GetState(ctx, "server", "signing-secret")
	if err != nil {
		t.Fatal(err)
	}
	mint := func(now func() time.Time, spec access.ViewerSpec) (audit.ViewerToken, string) {
		v, err := access.NewViewers(secret, a.Stores().Viewers, now)
		if err != nil {
			t.Fatal(err)
		}
		rec, tok, err := v.Mint(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		return rec, tok
	}
	_, sc.Viewer = mint(nil, access.ViewerSpec{Tenant: "acme", Name: "Acme security team", TTL: time.Hour})
	_, sc.ReadOnly = mint(nil, access.ViewerSpec{Tenant: "acme", Name: "read-only", TTL: time.Hour, ReadOnly: true})
	_, sc.OtherViewer = mint(nil, access.ViewerSpec{Tenant: "globex", Name: "Globex", TTL: time.Hour})
	_, sc.Expired = mint(func() time.Time { return time.Now().Add(-3 * time.Hour) }, access.ViewerSpec{Tenant: "acme", TTL: time.Hour})
	rec, revoked := mint(nil, access.ViewerSpec{Tenant: "acme", TTL: time.Hour})
	if err := a.Stores().Viewers.RevokeViewerToken(ctx, "acme", rec.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	sc.Revoked = revoked
	sc.Tampered = sc.Viewer[:len(sc.Viewer)-4] + "AAAA"
	if sc.Tampered == sc.Viewer {
		sc.Tampered = sc.Viewer[:len(sc.Viewer)-4] + "BBBB"
	}

	// Something of globex's that acme's session must never reach.
	page, err := a.Stores().Findings.SearchFindings(ctx, audit.FindingFilter{Tenant: "globex", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(page.Findings, func(f audit.Finding) bool { return f.ActorID != "" && len(f.Evidence) > 0 })
	if i < 0 {
		t.Fatal("the simulation raised no finding on an actor in globex")
	}
	f := page.Findings[i]
	ev, err := a.Stores().Events.GetEvent(ctx, "globex", f.Evidence[0])
	if err != nil {
		t.Fatal(err)
	}
	sc.Other.Tenant, sc.Other.Finding, sc.Other.Event, sc.Other.Actor = "globex", f.ID, ev.ID, f.ActorID
	sc.Other.IP, sc.Other.Session = ev.Context.IP.String(), ev.Context.SessionID
	// The finding's actor may have no session (a stuffing target whose
	// every login failed): any of the actor's, then any of globex's, does.
	for _, actor := range []string{f.ActorID, ""} {
		if sc.Other.Session != "" {
			break
		}
		evs, err := a.Stores().Events.SearchEvents(ctx, audit.EventFilter{Tenant: "globex", ActorID: actor, Limit: audit.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(evs.Events, func(e audit.Event) bool { return e.Context.SessionID != "" }); i >= 0 {
			sc.Other.Session = evs.Events[i].Context.SessionID
		}
	}
	if sc.Other.Session == "" {
		t.Fatal(errors.New("no globex session to probe"))
	}
	incs, err := a.Stores().Incidents.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "globex", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs.Incidents) == 0 {
		t.Fatal("the simulation raised no incident in globex")
	}
	sc.Other.Incident = incs.Incidents[0].ID
	return sc
}
