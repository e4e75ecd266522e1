package cli_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestIncidentsCommands sends a distributed stuffing wave from 300
// addresses (after two hours of ordinary typos), a hit and a takeover
// change through "events send" to a real server, then finds it as one
// incident, shows it and resolves it, which resolves its open findings.
func TestIncidentsCommands(t *testing.T) {
	env := startServer(t)
	rng := rand.New(rand.NewPCG(3, 7))
	start := time.Now().Add(-4 * time.Hour).UTC().Truncate(time.Second)
	var b strings.Builder
	line := func(at time.Time, action, reason, actor, ip, ua, session string) {
		fmt.Fprintf(&b, `{"tenant":"acme","time":%q,"action":%q,%s"actor":{"id":%q},"context":{"ip":%q,"user_agent":%q%s}}`+"\n",
			at.Format(time.RFC3339), action, map[bool]string{true: `"reason":"` + reason + `",`, false: ""}[reason != ""], actor, ip, ua,
			map[bool]string{true: `,"session_id":"` + session + `"`, false: ""}[session != ""])
	}
	for i := range 48 {
		line(start.Add(time.Duration(i)*150*time.Second), "auth.login.failure", "invalid_password", fmt.Sprintf("bg%d@acme.example", i%20),
			fmt.Sprintf("192.0.2.%d", 2+i%20), "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36", "")
	}
	waveAt := start.Add(2 * time.Hour)
	var addrs []string
	for i := range 300 {
		addrs = append(addrs, fmt.Sprintf("%d.%d.%d.%d", 81+i%40, 10+i/40, rng.IntN(250), 1+i%250))
	}
	type ev struct {
		at        time.Time
		actor, ip string
	}
	var wave []ev
	for i, ip := range addrs {
		for j := range 2 + rng.IntN(2) {
			wave = append(wave, ev{waveAt.Add(time.Duration(rng.IntN(15*60)) * time.Second), fmt.Sprintf("leak%d-%d@example.com", i, j), ip})
		}
	}
	for _, e := range wave {
		line(e.at, "auth.login.failure", "unknown_user", e.actor, e.ip, "python-requests/2.31", "")
	}
	fmt.Fprintf(&b, `{"tenant":"acme","time":%q,"action":"auth.login.success","actor":{"id":"carol@acme.example"},"context":{"ip":%q,"user_agent":"python-requests/2.31","session_id":"s-stolen","auth_method":"password"}}`+"\n",
		waveAt.Add(16*time.Minute).Format(time.RFC3339), addrs[17])
	fmt.Fprintf(&b, `{"tenant":"acme","time":%q,"action":"user.email.changed","actor":{"id":"carol@acme.example"},"target":{"id":"carol@acme.example","type":"user"},"context":{"ip":%q,"user_agent":"python-requests/2.31","session_id":"s-stolen"}}`+"\n",
		waveAt.Add(18*time.Minute).Format(time.RFC3339), addrs[17])
	if r := run(t, env, b.String(), "events", "send"); r.code != 0 || !strings.Contains(r.stdout, "accepted") {
		t.Fatalf("send: %+v", r)
	}

	var r result
	deadline := time.Now().Add(60 * time.Second)
	for {
		r = run(t, env, "", "incidents", "list", "--tenant", "acme", "--format", "json")
		if strings.Contains(r.stdout, `"ip_count": 300`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.code != 0 || strings.Count(r.stdout, `"ip_count": 300`) != 1 {
		t.Log(run(t, env, "", "findings", "list", "--tenant", "acme", "--limit", "20").stdout)
		t.Fatalf("incidents list: no incident with the wave's 300 addresses: %.2000s", r.stdout)
	}
	r = run(t, env, "", "incidents", "list", "--tenant", "acme")
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(rows) != 2 || !strings.Contains(rows[0], "HEADLINE") {
		t.Fatalf("incidents list: want one incident, got:\n%s", r.stdout)
	}
	id := regexp.MustCompile(`(\S+)\s*$`).FindStringSubmatch(rows[1])[1]

	r = run(t, env, "", "incidents", "show", id, "--tenant", "acme")
	if r.code != 0 || !strings.Contains(r.stdout, "accounts at risk") || !strings.Contains(r.stdout, "carol@acme.example") ||
		!strings.Contains(r.stdout, "timeline") || !strings.Contains(r.stdout, "automated-client") {
		t.Fatalf("incidents show: %.3000s", r.stdout)
	}
	if r := run(t, env, "", "incidents", "resolve", id, "--tenant", "acme"); r.code == 0 {
		t.Fatalf("resolve without a note succeeded: %+v", r)
	}
	if r := run(t, env, "", "incidents", "resolve", id, "--tenant", "acme", "--note", "proxies blocked, carol reset"); r.code != 0 || !strings.Contains(r.stdout, "is now resolved") {
		t.Fatalf("resolve: %+v", r)
	}
	// The cascade resolved the incident's findings.
	r = run(t, env, "", "findings", "list", "--tenant", "acme", "--status", "open")
	if r.code != 0 || !strings.Contains(r.stdout, "(no findings)") {
		t.Fatalf("open findings left after resolving the incident:\n%.2000s", r.stdout)
	}
	r = run(t, env, "", "incidents", "list", "--tenant", "acme", "--status", "resolved")
	if !strings.Contains(r.stdout, id) {
		t.Fatalf("resolved incident not listed as resolved:\n%s", r.stdout)
	}
}
