package cli_test

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/cli"
	"github.com/vigilhq/vigil/internal/config"
)

// startServer runs an in-process server on 127.0.0.1:0 with a tenant acme
// and returns the environment of a client command talking to it.
func startServer(t *testing.T, edit ...func(*config.Config)) map[string]string {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "error"
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := a.Stores().Tenants.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatal(err)
	}
	// The server's own listen variable is enough for the client commands.
	return map[string]string{"VIGIL_SERVER_ADDR": a.Addr(), "VIGIL_API_KEY": a.BootstrapKey}
}

// TestFindingsAndRulesCommands raises a brute-force finding through
// "events send", then lists, shows, acknowledges and resolves it, and lists
// the rules with a tenant's tuning.
func TestFindingsAndRulesCommands(t *testing.T) {
	env := startServer(t)
	var b strings.Builder
	at := time.Now().Add(-10 * time.Minute).UTC()
	for i := range 12 {
		fmt.Fprintf(&b, `{"tenant":"acme","time":%q,"action":"auth.login.failure","reason":"invalid_password","actor":{"id":"alice"},"context":{"ip":"203.0.113.%d","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}}`+"\n",
			at.Add(time.Duration(i)*5*time.Second).Format(time.RFC3339), 10+i%2)
	}
	if r := run(t, env, b.String(), "events", "send"); r.code != 0 || !strings.Contains(r.stdout, "12 accepted") {
		t.Fatalf("send: %+v", r)
	}
	var r result
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = run(t, env, "", "findings", "list", "--tenant", "acme", "--rule", "brute-force")
		if strings.Contains(r.stdout, "alice") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.code != 0 || !strings.Contains(r.stdout, "brute-force") || !strings.Contains(r.stdout, "open") || !strings.Contains(r.stdout, "SEVERITY") {
		t.Fatalf("findings list: %+v", r)
	}
	id := regexp.MustCompile(`(?m)\s(\S+)\s*$`).FindStringSubmatch(strings.Split(strings.TrimSpace(r.stdout), "\n")[1])[1]
	// The same findings as OCSF Detection Findings, one a line.
	if o := run(t, env, "", "findings", "list", "--tenant", "acme", "--rule", "brute-force", "--format", "ocsf"); o.code != 0 ||
		!strings.Contains(o.stdout, `"class_uid":2004`) || !strings.Contains(o.stdout, `"uid":"`+id+`"`) {
		t.Fatalf("findings list --format ocsf: %+v", o)
	}
	// And as ECS alert documents.
	if o := run(t, env, "", "findings", "list", "--tenant", "acme", "--rule", "brute-force", "--format", "ecs"); o.code != 0 ||
		!strings.Contains(o.stdout, `"kind":"alert"`) || !strings.Contains(o.stdout, `"dataset":"vigil.finding"`) || !strings.Contains(o.stdout, `"id":"`+id+`"`) {
		t.Fatalf("findings list --format ecs: %+v", o)
	}

	r = run(t, env, "", "findings", "show", id, "--tenant", "acme")
	if r.code != 0 || !strings.Contains(r.stdout, "explanation") || !strings.Contains(r.stdout, "failed logins on alice") ||
		!strings.Contains(r.stdout, "evidence (12 of 12 events)") || !strings.Contains(r.stdout, "auth.login.failure") {
		t.Fatalf("findings show: %+v", r)
	}
	if r := run(t, env, "", "findings", "ack", id, "--tenant", "acme"); r.code != 0 || !strings.Contains(r.stdout, "is now acknowledged") {
		t.Fatalf("ack: %+v", r)
	}
	if r := run(t, env, "", "findings", "resolve", id, "--tenant", "acme", "--note", "alice forgot her password"); r.code != 0 || !strings.Contains(r.stdout, "is now resolved") {
		t.Fatalf("resolve: %+v", r)
	}
	r = run(t, env, "", "findings", "list", "--tenant", "acme", "--status", "resolved", "--format", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"note": "alice forgot her password"`) {
		t.Fatalf("resolved list: %+v", r)
	}
	if r := run(t, env, "", "findings", "list", "--tenant", "acme", "--status", "open"); r.code != 0 || !strings.Contains(r.stdout, "(no findings)") {
		t.Fatalf("open list after resolve: %+v", r)
	}
	if r := run(t, env, "", "findings", "show", "nope", "--tenant", "acme"); r.code != cli.ExitFail || !strings.Contains(r.stderr, "not_found") {
		t.Fatalf("show missing: %+v", r)
	}
	if r := run(t, env, "", "findings", "resolve"); r.code != cli.ExitUsage {
		t.Fatalf("resolve without id: %+v", r)
	}

	r = run(t, env, "", "rules", "list", "--tenant", "acme")
	if r.code != 0 || !regexp.MustCompile(`brute-force\s+brute-force\s+distinct\s+medium\s+yes\s+min_failures=10 window=10m`).MatchString(r.stdout) {
		t.Fatalf("rules list: %+v", r)
	}
}
