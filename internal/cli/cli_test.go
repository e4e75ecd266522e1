package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/cli"
	"github.com/vigilhq/vigil/internal/config"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(t.Context(), args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func TestHelpAndUsage(t *testing.T) {
	if r := run(t, nil, "", "help"); r.code != 0 || !strings.Contains(r.stdout, "events send") {
		t.Fatalf("help: %+v", r)
	}
	if r := run(t, nil, ""); r.code != cli.ExitUsage {
		t.Fatalf("no args: %d", r.code)
	}
	if r := run(t, nil, "", "frobnicate"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "unknown command") {
		t.Fatalf("unknown: %+v", r)
	}
	if r := run(t, nil, "", "keys", "create"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--operator or --tenant") {
		t.Fatalf("keys create without flags: %+v", r)
	}
	if r := run(t, nil, "", "serve", "--bogus"); r.code != cli.ExitUsage {
		t.Fatalf("bad flag: %+v", r)
	}
	if r := run(t, nil, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "vigil ") {
		t.Fatalf("version: %+v", r)
	}
}

func TestConfigCheck(t *testing.T) {
	r := run(t, map[string]string{"VIGIL_SERVER_ADDR": "127.0.0.1:9999"}, "", "config", "check")
	if r.code != 0 || !strings.Contains(r.stdout, "addr: 127.0.0.1:9999") {
		t.Fatalf("config check: %+v", r)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("log:\n  level: loud\n"), 0o600)
	r = run(t, nil, "", "config", "check", "--config", bad)
	if r.code != cli.ExitFail || !strings.Contains(r.stderr, "log.level") {
		t.Fatalf("bad config: %+v", r)
	}
}

func TestLocalAdminCommands(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"VIGIL_STORAGE_SQLITE_DIR": dir}
	if r := run(t, env, "", "tenants", "create", "acme", "--name", "Acme"); r.code != 0 {
		t.Fatalf("tenants create: %+v", r)
	}
	if r := run(t, env, "", "tenants", "create", "acme"); r.code != cli.ExitFail || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("duplicate tenant: %+v", r)
	}
	r := run(t, env, "", "keys", "create", "--tenant", "acme", "--scopes", "events:read,events:write", "--name", "ci")
	if r.code != 0 || !regexp.MustCompile(`^vgl_[0-9a-f]{16}_[a-z2-7]+\n$`).MatchString(r.stdout) {
		t.Fatalf("keys create: %+v", r)
	}
	secret := strings.TrimSpace(r.stdout)
	if r := run(t, env, "", "keys", "create", "--tenant", "nope", "--scopes", "admin"); r.code != cli.ExitFail {
		t.Fatalf("key for missing tenant: %+v", r)
	}
	r = run(t, env, "", "keys", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "events:read,events:write") || strings.Contains(r.stdout, secret[20:]) {
		t.Fatalf("keys list: %+v", r)
	}
	id := strings.Split(secret, "_")[1]
	if r := run(t, env, "", "keys", "revoke", id); r.code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	if r := run(t, env, "", "keys", "list", "--tenant", "acme"); !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("list after revoke: %+v", r)
	}
	// An operator key carries the scopes asked for (before, always admin,
	// with the asked-for scopes beside it), and admin when none are given.
	r = run(t, env, "", "keys", "create", "--operator", "--scopes", "events:read", "--name", "report")
	if r.code != 0 {
		t.Fatalf("keys create --operator --scopes: %+v", r)
	}
	r = run(t, env, "", "keys", "create", "--operator", "--name", "root")
	if r.code != 0 {
		t.Fatalf("keys create --operator: %+v", r)
	}
	r = run(t, env, "", "keys", "list")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\S+\s+\(operator\)\s+report\s+events:read\s`),
		regexp.MustCompile(`(?m)^\S+\s+\(operator\)\s+root\s+admin\s`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("keys list does not match %s:\n%s", want, r.stdout)
		}
	}
	if r := run(t, env, "", "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
}

// TestEventsSendAndQuery drives a real in-process server through the CLI's
// client commands.
func TestEventsSendAndQuery(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "error"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// A bare host:port, as the server's own VIGIL_SERVER_ADDR is written.
	env := map[string]string{"VIGIL_SERVER": a.Addr(), "VIGIL_API_KEY": a.BootstrapKey}
	if err := a.Stores().Tenants.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	ndjson := `{"id":"e1","tenant":"acme","time":"` + at + `","action":"auth.login.failure","reason":"unknown_user","actor":{"id":"mallory"},"context":{"ip":"203.0.113.5"}}
{"id":"e2","tenant":"acme","time":"` + at + `","action":"auth.login.failure","actor":{"id":"mallory"},"context":{"ip":"203.0.113.5"}}
`
	r := run(t, env, ndjson, "events", "send")
	if r.code != cli.ExitFail || !strings.Contains(r.stdout, "1 accepted, 0 duplicates, 1 rejected") || !strings.Contains(r.stderr, "event 1 rejected (reason)") {
		t.Fatalf("send: %+v", r)
	}
	if r := run(t, env, ndjson, "events", "send"); !strings.Contains(r.stdout, "0 accepted, 1 duplicates") {
		t.Fatalf("resend: %+v", r)
	}
	// Progress: from a file, whose size is known, with a percentage; from
	// stdin, without. Not a terminal here, so periodic lines.
	file := filepath.Join(t.TempDir(), "events.ndjson")
	var many strings.Builder
	for i := range 30 {
		fmt.Fprintf(&many, `{"id":"p%d","tenant":"acme","time":%q,"action":"auth.login.failure","reason":"invalid_password","actor":{"id":"u%d"},"context":{"ip":"203.0.113.9"}}`+"\n", i, at, i)
	}
	os.WriteFile(file, []byte(many.String()), 0o600)
	r = run(t, env, "", "events", "send", file, "--batch", "10", "--progress-every", "1ns")
	if r.code != 0 || !strings.Contains(r.stdout, "30 accepted") || !strings.Contains(r.stderr, "sent 10 events (") ||
		!strings.Contains(r.stderr, "sent 30 events (100%), ") || !strings.Contains(r.stderr, "events/s") {
		t.Fatalf("send a file with progress: %+v", r)
	}
	r = run(t, env, many.String(), "events", "send", "--batch", "10", "--progress-every", "1ns")
	if r.code != 0 || !strings.Contains(r.stdout, "30 duplicates") || !strings.Contains(r.stderr, "sent 30 events, ") {
		t.Fatalf("send stdin with progress: %+v", r)
	}
	if r := run(t, env, many.String(), "events", "send", "--quiet"); r.code != 0 || r.stderr != "" {
		t.Fatalf("--quiet: %+v", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = run(t, env, "", "events", "query", "--tenant", "acme", "--ip", "203.0.113.0/24", "--format", "json")
		if strings.Contains(r.stdout, `"id": "e1"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.code != 0 || !strings.Contains(r.stdout, `"id": "e1"`) {
		t.Fatalf("query: %+v", r)
	}
	r = run(t, env, "", "events", "query", "--tenant", "acme", "--actor", "mallory")
	if r.code != 0 || !strings.Contains(r.stdout, "auth.login.failure") || !strings.Contains(r.stdout, "ACTION") {
		t.Fatalf("table query: %+v", r)
	}
	if r := run(t, map[string]string{"VIGIL_SERVER": env["VIGIL_SERVER"]}, "", "events", "query"); r.code != cli.ExitUsage {
		t.Fatalf("no key: %+v", r)
	}
}

func TestEnrichCommand(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "tor.txt")
	os.WriteFile(list, []byte("# tor exits\n185.220.101.1\n"), 0o600)
	cfgPath := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfgPath, []byte("enrich:\n  city_db: ../enrich/geoip/testdata/GeoIP2-City-Test.mmdb\n  lists:\n    - {name: tor-exits, kind: tor, path: "+list+"}\n"), 0o600)
	r := run(t, nil, "", "enrich", "--config", cfgPath, "--ua", "curl/8.5.0", "185.220.101.1")
	if r.code != 0 || !strings.Contains(r.stdout, "tor=true") || !strings.Contains(r.stdout, "class=scripted") {
		t.Fatalf("enrich: %+v", r)
	}
	r = run(t, nil, "", "enrich", "--config", cfgPath, "81.2.69.142")
	if r.code != 0 || !strings.Contains(r.stdout, "GB") || !strings.Contains(r.stdout, "London") {
		t.Fatalf("enrich geo: %+v", r)
	}
	if r := run(t, nil, "", "enrich", "not-an-ip"); r.code != cli.ExitUsage {
		t.Fatalf("bad ip: %+v", r)
	}
	if strings.Contains(r.stdout, "warning") && strings.Contains(r.stdout, "city database") {
		t.Fatalf("a loaded city database is reported missing: %+v", r)
	}
}

// TestEnrichSeveralCityDatabases configures two databases (a country one
// first, then a city one, next to the old single key) and checks lookups
// fall through to the one that knows the address, for IPv4 and IPv6; and
// that a missing database is said plainly.
func TestEnrichSeveralCityDatabases(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfgPath, []byte("enrich:\n  city_dbs:\n    - "+filepath.Join(dir, "missing.mmdb")+"\n    - ../enrich/geoip/testdata/GeoIP2-City-Test.mmdb\n"), 0o600)
	r := run(t, nil, "", "enrich", "--config", cfgPath, "2001:218::1")
	if r.code != 0 || !strings.Contains(r.stdout, "JP") || !strings.Contains(r.stdout, "NOT LOADED (") || strings.Contains(r.stdout, "city database") {
		t.Fatalf("IPv6 through the second database: %+v", r)
	}
	r = run(t, nil, "", "enrich", "--config", cfgPath, "81.2.69.142")
	if r.code != 0 || !strings.Contains(r.stdout, "London") {
		t.Fatalf("IPv4 through the second database: %+v", r)
	}
	// Nothing configured: said plainly, in table and JSON.
	r = run(t, nil, "", "enrich", "81.2.69.142")
	if r.code != 0 || !strings.Contains(r.stdout, "warning") || !strings.Contains(r.stdout, "no city database is configured") ||
		!strings.Contains(r.stdout, "no ASN database is configured") {
		t.Fatalf("no database: %+v", r)
	}
	r = run(t, nil, "", "enrich", "--format", "json", "81.2.69.142")
	if r.code != 0 || !strings.Contains(r.stdout, `"warnings": [`) || !strings.Contains(r.stdout, "no city database is configured") {
		t.Fatalf("no database, json: %+v", r)
	}
	// Configured but not loadable.
	os.WriteFile(cfgPath, []byte("enrich:\n  city_db: "+filepath.Join(dir, "missing.mmdb")+"\n"), 0o600)
	r = run(t, nil, "", "enrich", "--config", cfgPath, "81.2.69.142")
	if r.code != 0 || !strings.Contains(r.stdout, "none of the 1 configured city databases is loaded") {
		t.Fatalf("unloadable database: %+v", r)
	}
}

func TestRulesCommands(t *testing.T) {
	if r := run(t, nil, "", "rules", "check", "../rules"); r.code != 0 || !strings.Contains(r.stdout, "credential-stuffing") {
		t.Fatalf("rules check: %+v", r)
	}
	r := run(t, nil, "", "rules", "test", "../rules")
	if r.code != 0 || !strings.Contains(r.stdout, " passed, 0 failed") {
		t.Fatalf("rules test: %+v", r)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "x.yaml"), []byte("id: x\nkind: threshold\nwindo: 5m\n"), 0o600)
	if r := run(t, nil, "", "rules", "check", bad); r.code != cli.ExitFail || !strings.Contains(r.stderr, "x.yaml") {
		t.Fatalf("bad rule: %+v", r)
	}
	if r := run(t, nil, "", "rules", "test", bad); r.code != cli.ExitFail {
		t.Fatalf("rules test on a bad dir: %+v", r)
	}
}

func TestProfilesRebuild(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = dir
	ctx := t.Context()
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Stores().Tenants.CreateTenant(ctx, tenant("acme")); err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	base := time.Now().UTC().Add(-72 * time.Hour)
	for i := range 30 {
		evs = append(evs, audit.Event{ID: fmt.Sprintf("e%d", i), Tenant: "acme", Action: audit.ActionLoginSuccess,
			Time: base.Add(time.Duration(i) * 2 * time.Hour), ReceivedAt: base, Outcome: audit.OutcomeSuccess,
			Actor:   audit.Actor{ID: fmt.Sprintf("u%d", i%3), Type: "user"},
			Context: audit.Context{IP: netip.MustParseAddr("81.2.69.142"), UserAgent: "Mozilla/5.0", AuthMethod: "password", SessionID: "s"}})
	}
	if err := a.Stores().Events.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Close the app without running it: New opened the stores.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = a.Run(cctx)
	r := run(t, map[string]string{"VIGIL_STORAGE_SQLITE_DIR": dir}, "", "profiles", "rebuild")
	if r.code != 0 || !strings.Contains(r.stdout, "rebuilt profiles from 30 events in 1 tenants") {
		t.Fatalf("rebuild: %+v", r)
	}
	// The rebuilt state is persisted.
	keys := 0
	err = app.WithStores(ctx, cfg, func(s *app.Stores) error {
		return s.State.ScanState(ctx, "detect", func(string, []byte) error { keys++; return nil })
	})
	if err != nil || keys == 0 {
		t.Fatalf("no detection state after rebuild: %d keys, %v", keys, err)
	}
}

func TestCommandGroups(t *testing.T) {
	r := run(t, nil, "", "keys")
	if r.code != cli.ExitUsage || !strings.Contains(r.stdout, "keys create") || !strings.Contains(r.stdout, "keys revoke") || strings.Contains(r.stderr, "unknown command") {
		t.Fatalf("vigil keys: %+v", r)
	}
	if r := run(t, nil, "", "help", "keys"); r.code != 0 || !strings.Contains(r.stdout, "keys list") {
		t.Fatalf("vigil help keys: %+v", r)
	}
	if r := run(t, nil, "", "keys", "frob"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, `unknown command "keys frob"`) || !strings.Contains(r.stderr, "keys create") {
		t.Fatalf("vigil keys frob: %+v", r)
	}
	if r := run(t, nil, "", "help", "serve"); r.code != 0 || !strings.Contains(r.stdout, "--addr") || !strings.Contains(r.stdout, "--data-dir") {
		t.Fatalf("vigil help serve: %+v", r)
	}
	if r := run(t, nil, "", "help", "demo"); r.code != 0 || !strings.Contains(r.stdout, "--users") || !strings.Contains(r.stdout, "(default 1000)") {
		t.Fatalf("vigil help demo: %+v", r)
	}
	if r := run(t, nil, "", "help", "nope"); r.code != cli.ExitUsage {
		t.Fatalf("vigil help nope: %+v", r)
	}
}
