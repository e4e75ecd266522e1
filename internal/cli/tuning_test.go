package cli_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/cli"
)

// TestAllowlistAndEgressCommands: staff logging in from home and then
// through a corporate gateway far away teach the server a shared egress;
// "egresses list" shows it, "allowlist add --mode not_egress" forbids it
// (and the listing says so), "allowlist remove" restores it.
func TestAllowlistAndEgressCommands(t *testing.T) {
	env := startServer(t)
	homes := []struct {
		city     string
		lat, lon float64
	}{{"Paris", 48.85, 2.35}, {"Berlin", 52.52, 13.40}, {"Madrid", 40.42, -3.70}, {"Rome", 41.90, 12.50}, {"Warsaw", 52.23, 21.01}, {"Oslo", 59.91, 10.75}}
	at := time.Now().Add(-10 * time.Hour).UTC()
	var b strings.Builder
	line := func(actor, ip, city string, lat, lon float64, t time.Time) {
		fmt.Fprintf(&b, `{"tenant":"acme","time":%q,"action":"auth.login.success","actor":{"id":%q},"context":{"ip":%q,"auth_method":"password","session_id":"s-%s-%d","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","geo":{"country":"XX","city":%q,"latitude":%g,"longitude":%g}}}`+"\n",
			t.Format(time.RFC3339), actor, ip, actor, t.Unix(), city, lat, lon)
	}
	for i, h := range homes {
		line(fmt.Sprintf("staff-%d", i), fmt.Sprintf("85.%d.10.20", 110+i), h.city, h.lat, h.lon, at.Add(time.Duration(i)*time.Minute))
	}
	for i := range homes {
		line(fmt.Sprintf("staff-%d", i), "198.51.100.10", "Ashburn", 39.04, -77.49, at.Add(6*time.Hour+time.Duration(i)*time.Minute))
	}
	if r := run(t, env, b.String(), "events", "send"); r.code != 0 || !strings.Contains(r.stdout, "12 accepted") {
		t.Fatalf("send: %+v", r)
	}
	learned := regexp.MustCompile(`(?m)^ip\s+198\.51\.100\.10\s+6\s+0\s+6/0\s+\d{4}-\d\d-\d\d\s+\d{4}-\d\d-\d\d\s+true\s+-$`)
	var r result
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = run(t, env, "", "egresses", "list", "--tenant", "acme")
		if learned.MatchString(r.stdout) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.code != 0 || !learned.MatchString(r.stdout) || !strings.Contains(r.stdout, "198.51.100.0/24") || !strings.Contains(r.stdout, "FAR ACTORS") {
		t.Fatalf("egresses list: %+v", r)
	}

	if r := run(t, env, "", "allowlist", "add", "cidr", "198.51.100.0/24", "--mode", "not_egress", "--note", "a hosting range", "--tenant", "acme"); r.code != 0 || !strings.Contains(r.stdout, "mode not_egress") {
		t.Fatalf("allowlist add: %+v", r)
	}
	r = run(t, env, "", "allowlist", "list", "--tenant", "acme")
	if r.code != 0 || !regexp.MustCompile(`cidr\s+198\.51\.100\.0/24\s+not_egress\s+\S+\s+a hosting range`).MatchString(r.stdout) {
		t.Fatalf("allowlist list: %+v", r)
	}
	r = run(t, env, "", "egresses", "list", "--tenant", "acme", "--format", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"tuning": "forbidden"`) || !strings.Contains(r.stdout, `"relay": false`) {
		t.Fatalf("egresses after forbidding: %+v", r)
	}
	if r := run(t, env, "", "allowlist", "remove", "cidr", "198.51.100.0/24", "--tenant", "acme"); r.code != 0 {
		t.Fatalf("allowlist remove: %+v", r)
	}
	if r := run(t, env, "", "egresses", "list", "--tenant", "acme"); r.code != 0 || !learned.MatchString(r.stdout) {
		t.Fatalf("egresses after removing the entry: %+v", r)
	}
	if r := run(t, env, "", "allowlist", "list", "--tenant", "acme"); r.code != 0 || !strings.Contains(r.stdout, "(no allowlist entries)") {
		t.Fatalf("allowlist list after remove: %+v", r)
	}

	if r := run(t, env, "", "allowlist", "add", "ip", "192.0.2.1", "--mode", "sometimes", "--tenant", "acme"); r.code != cli.ExitUsage {
		t.Fatalf("a bad mode: %+v", r)
	}
	if r := run(t, env, "", "allowlist", "add", "ip", "not-an-ip", "--tenant", "acme"); r.code != cli.ExitFail || !strings.Contains(r.stderr, "value") {
		t.Fatalf("a bad value: %+v", r)
	}
	if r := run(t, env, "", "egresses", "list", "--tenant", "nobody"); r.code != 0 || !strings.Contains(r.stdout, "(no shared egresses learned)") {
		t.Fatalf("a tenant with none: %+v", r)
	}
}

// TestActionsCommands: "actions request" stores a response action (and
// refuses an unknown type, naming the field); "actions list" shows it.
func TestActionsCommands(t *testing.T) {
	env := startServer(t)
	r := run(t, env, "", "actions", "request", "revoke_sessions", "alice@example.com", "--reason", "cookie replayed", "--tenant", "acme")
	if r.code != 0 || !regexp.MustCompile(`^act_\S+ requested: revoke_sessions for alice@example.com`).MatchString(r.stdout) {
		t.Fatalf("request: %+v", r)
	}
	if r := run(t, env, "", "actions", "request", "explode", "alice", "--tenant", "acme"); r.code != cli.ExitFail || !strings.Contains(r.stderr, "type") {
		t.Fatalf("a bad type: %+v", r)
	}
	if r := run(t, env, "", "actions", "request", "lock_account", "--tenant", "acme"); r.code != cli.ExitUsage {
		t.Fatalf("no account: %+v", r)
	}
	r = run(t, env, "", "actions", "list", "--tenant", "acme")
	if r.code != 0 || !regexp.MustCompile(`act_\S+\s+revoke_sessions\s+alice@example.com\s+requested\s+key:\S+`).MatchString(r.stdout) {
		t.Fatalf("list: %+v", r)
	}
}
