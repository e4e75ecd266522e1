package cli_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

// TestRulesBacktestCommand: raising brute-force's threshold above what
// happened removes yesterday's finding, and the command says so.
func TestRulesBacktestCommand(t *testing.T) {
	env := startServer(t)
	ctx := t.Context()
	op, err := client.New("http://"+env["VIGIL_SERVER_ADDR"], client.WithAPIKey(env["VIGIL_API_KEY"]), client.WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-26 * time.Hour)
	var evs []client.Event
	for i := range 12 {
		evs = append(evs, client.Event{ID: fmt.Sprintf("f%d", i), Action: "auth.login.failure", Time: at.Add(time.Duration(i) * 15 * time.Second),
			Reason: "invalid_password", Actor: client.Actor{ID: "carol@acme.example"}, Context: client.Context{IP: "198.51.100.9"}})
	}
	if _, err := op.Send(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := op.SearchEvents(ctx, client.SearchParams{Action: "auth.login.failure"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == len(evs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events stored", len(page.Events), len(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := run(t, env, "", "rules", "backtest", "brute-force", "--tenant", "acme", "--set", "min_failures=20", "--since", "3d", "--quiet")
	if r.code != 0 || !regexp.MustCompile(`(?m)^total\s+1\s+0\s*$`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "no longer raises") || !strings.Contains(r.stdout, "carol@acme.example") {
		t.Fatalf("backtest: %+v", r)
	}
	r = run(t, env, "", "rules", "backtest", "brute-force", "--tenant", "acme", "--set", "min_failures=5", "--format", "json", "--quiet")
	if r.code != 0 || !strings.Contains(r.stdout, `"proposed": 1`) {
		t.Fatalf("backtest json: %+v", r)
	}
	if r := run(t, env, "", "rules", "suggest", "--tenant", "acme"); r.code != 0 || !strings.Contains(r.stdout, "no suggestions") {
		t.Fatalf("suggest with nothing resolved: %+v", r)
	}
	if r := run(t, env, "", "findings", "resolve", "some-id", "--tenant", "acme", "--note", "x", "--benign", "--malicious"); r.code == 0 || !strings.Contains(r.stderr, "exclude each other") {
		t.Fatalf("--benign with --malicious: %+v", r)
	}
	if r := run(t, env, "", "rules", "backtest", "brute-force", "--set", "min_failures"); r.code == 0 || !strings.Contains(r.stderr, "NAME=VALUE") {
		t.Fatalf("a --set without a value: %+v", r)
	}
	if r := run(t, env, "", "rules", "backtest", "brute-force", "--tenant", "acme", "--set", "min_failures=1"); r.code == 0 || !strings.Contains(r.stderr, "min_failures") {
		t.Fatalf("an out-of-range parameter: %+v", r)
	}
}
