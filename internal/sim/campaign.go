package sim

import (
	"fmt"
	"time"

	"github.com/vigilhq/vigil/client"
)

// Campaign is one simulated attack: its events and which rules a detector
// should catch it with. Event ids are set, so findings can be attributed to
// the campaign through their evidence.
type Campaign struct {
	Name        string
	Description string
	// Expect lists rule ids any one of which catching the campaign counts.
	Expect []string
	Events []client.Event
	// Tenant the campaign targets.
	Tenant string
}

// IDs returns the campaign's event ids.
func (c *Campaign) IDs() map[string]bool {
	out := make(map[string]bool, len(c.Events))
	for _, e := range c.Events {
		out[e.ID] = true
	}
	return out
}

// victims picks distinct users with ordinary habits and enough history.
func (w *World) victims(tenant string, n int, skip map[string]bool) []*User {
	var out []*User
	for _, u := range w.Users {
		if u.Tenant != tenant || u.VPN || u.Traveller || u.NightShift || skip[u.ID] {
			continue
		}
		out = append(out, u)
		skip[u.ID] = true
		if len(out) == n {
			break
		}
	}
	return out
}

const (
	pythonUA = "python-requests/2.31.0"
	curlUA   = "curl/8.5.0"
)

// Campaigns builds the attack campaigns, all ending shortly before now.
func (w *World) Campaigns(now time.Time) []*Campaign {
	r := w.rng
	used := map[string]bool{}
	t0, t1, t2 := w.Tenants[0], w.Tenants[len(w.Tenants)/2], w.Tenants[len(w.Tenants)-1]
	start := now.Add(-25 * time.Minute)
	moscow, lagos, hanoi, jakarta := attackerCities[1], attackerCities[0], attackerCities[2], attackerCities[3]
	var out []*Campaign
	add := func(c *Campaign) {
		for i := range c.Events {
			c.Events[i].ID = fmt.Sprintf("atk-%02d-%04d", len(out), i)
		}
		out = append(out, c)
	}

	// 1. Credential stuffing from one source, with a hit that takes an account.
	stuffer := place{moscow, IPIn(moscow.Block, 77)}
	c := &Campaign{Name: "credential stuffing (one source)", Tenant: t0,
		Description: "180 identifiers tried from one IP in 4 minutes, 1–2 attempts each",
		Expect:      []string{"credential-stuffing", "credential-stuffing-subnet", "credential-stuffing-asn"}}
	realUsers := w.victims(t0, 40, map[string]bool{})
	for i := range 180 {
		at := start.Add(time.Duration(i) * 1300 * time.Millisecond)
		id, reason := fmt.Sprintf("leaked%d@mail.example", i), "unknown_user"
		if i%4 == 0 {
			id, reason = realUsers[i/4%len(realUsers)].ID, "invalid_password"
		}
		c.Events = append(c.Events, failure(t0, id, reason, at, stuffer, browsers[i%len(browsers)]))
		if i%7 == 0 {
			c.Events = append(c.Events, failure(t0, id, reason, at.Add(400*time.Millisecond), stuffer, browsers[i%len(browsers)]))
		}
	}
	add(c)
	hitVictim := w.victims(t0, 1, used)[0]
	hitAt := start.Add(5 * time.Minute)
	dev := Device{ID: "dev-stuffer", UserAgent: browsers[0]}
	hit := &Campaign{Name: "stuffing hit, then email and password change", Tenant: t0,
		Description: "a login that succeeds from the stuffing source, then the account's email and password are changed",
		Expect:      []string{"stuffing-hit", "login-takeover-change", "takeover-sequence"}}
	hit.Events = append(hit.Events,
		failure(t0, hitVictim.ID, "invalid_password", hitAt.Add(-2*time.Second), stuffer, dev.UserAgent),
		w.login(hitVictim, hitAt, stuffer, dev, "s-hit"),
		simple(hitVictim, "user.email.changed", hitAt.Add(2*time.Minute), stuffer, dev, "s-hit", map[string]any{"old": hitVictim.Email, "new": "owned@evil.example"}, hitVictim.ID),
		simple(hitVictim, "auth.password.changed", hitAt.Add(3*time.Minute), stuffer, dev, "s-hit", nil, ""))
	add(hit)

	// 2. Distributed stuffing: many IPs, each below the single-source threshold.
	c = &Campaign{Name: "distributed credential stuffing", Tenant: t1,
		Description: "120 IPs in 4 countries try 2 identifiers each within 10 minutes",
		Expect:      []string{"distributed-credential-stuffing", "distributed-credential-stuffing-installation"}}
	for i := range 120 {
		city := attackerCities[i%len(attackerCities)]
		p := place{city, IPIn(city.Block, 1000+i*13)}
		for j := range 2 {
			at := start.Add(time.Duration(i*5+j*2) * time.Second)
			c.Events = append(c.Events, failure(t1, fmt.Sprintf("combo%d@webmail.example", i*2+j), "unknown_user", at, p, browsers[(i+j)%len(browsers)]))
		}
	}
	add(c)

	// 3. Brute force on one account, ending in a lockout.
	bf := w.victims(t2, 1, used)[0]
	c = &Campaign{Name: "brute force on one account", Tenant: t2,
		Description: "30 password guesses on one account from 6 IPs in 6 minutes, then a lockout",
		Expect:      []string{"brute-force", "lockout-attack"}}
	for i := range 30 {
		city := attackerCities[i%2]
		p := place{city, IPIn(city.Block, 200+i%6)}
		reason := "invalid_password"
		if i >= 25 {
			reason = "account_locked"
		}
		c.Events = append(c.Events, failure(t2, bf.ID, reason, start.Add(time.Duration(i*12)*time.Second), p, browsers[2]))
	}
	add(c)

	// 4. Targeted takeover: a login from a new country and device, then MFA
	// removal, password change and email change.
	v := w.victims(t1, 1, used)[0]
	p := place{lagos, IPIn(lagos.Block, 91)}
	at := start.Add(8 * time.Minute)
	dev = Device{ID: "dev-attacker-1", UserAgent: browsers[3]}
	add(&Campaign{Name: "targeted takeover sequence", Tenant: t1,
		Description: "login from a never-seen country and device, then MFA removed, password and email changed",
		Expect:      []string{"takeover-sequence", "login-takeover-change", "new-location"},
		Events: []client.Event{
			w.login(v, at, p, dev, "s-tk"),
			simple(v, "auth.mfa.removed", at.Add(3*time.Minute), p, dev, "s-tk", map[string]any{"factor": "totp"}, ""),
			simple(v, "auth.password.changed", at.Add(5*time.Minute), p, dev, "s-tk", nil, ""),
			simple(v, "user.email.changed", at.Add(7*time.Minute), p, dev, "s-tk", map[string]any{"old": v.Email, "new": "x@evil.example"}, v.ID),
		}})

	// 5. Impossible travel: home, then the other side of the world 25 minutes later.
	v = w.victims(t0, 1, used)[0]
	far := Cities[(indexOf(v.Home)+len(Cities)/2)%len(Cities)]
	for distanceKM(v.Home, far) < 3000 {
		far = Cities[r.IntN(len(Cities))]
	}
	at = start
	add(&Campaign{Name: "impossible travel", Tenant: t0,
		Description: fmt.Sprintf("login in %s, then in %s 25 minutes later", v.Home.Name, far.Name),
		Expect:      []string{"impossible-travel", "concurrent-sessions"},
		Events: []client.Event{
			w.login(v, at, place{v.Home, v.HomeIP}, v.Devices[0], "s-it-1"),
			w.login(v, at.Add(25*time.Minute), place{far, IPIn(far.Block, 3333)}, Device{ID: "dev-it", UserAgent: browsers[1]}, "s-it-2"),
		}})

	// 6. Session hijack: the victim's session cookie replayed from elsewhere.
	v = w.victims(t2, 1, used)[0]
	at = start.Add(4 * time.Minute)
	thief := place{hanoi, IPIn(hanoi.Block, 55)}
	add(&Campaign{Name: "session hijack", Tenant: t2,
		Description: "a session created at home is used 10 minutes later from another country with another browser",
		Expect:      []string{"session-hijack", "concurrent-sessions"},
		Events: []client.Event{
			w.login(v, at, place{v.Home, v.HomeIP}, v.Devices[0], "s-hj"),
			simple(v, "data.downloaded", at.Add(10*time.Minute), thief, Device{ID: "dev-thief", UserAgent: browsers[5]}, "s-hj", map[string]any{"records": 20}, ""),
		}})

	// 7. Exfiltration after a credential change (password reset flow).
	v = w.victims(t0, 1, used)[0]
	at = start.Add(6 * time.Minute)
	p = place{jakarta, IPIn(jakarta.Block, 12)}
	dev = Device{ID: "dev-ex", UserAgent: browsers[0]}
	reqEv := simple(v, "auth.password.reset", at, p, dev, "", map[string]any{"stage": "requested"}, "")
	doneEv := simple(v, "auth.password.reset", at.Add(4*time.Minute), p, dev, "", map[string]any{"stage": "completed"}, "")
	add(&Campaign{Name: "exfiltration after credential change", Tenant: t0,
		Description: "password reset completed, then 48,000 records exported",
		Expect:      []string{"exfiltration-after-change"},
		Events: []client.Event{reqEv, doneEv,
			w.login(v, at.Add(5*time.Minute), p, dev, "s-ex"),
			simple(v, "data.exported", at.Add(8*time.Minute), p, dev, "s-ex", map[string]any{"records": 48000, "bytes": 91_000_000}, "")}})

	// 8. Persistence: a risky login from rented servers, then a new API key.
	v = w.victims(t1, 1, used)[0]
	at = start.Add(10 * time.Minute)
	p = place{Hosting, IPIn(Hosting.Block, 9)}
	dev = Device{ID: "dev-ps", UserAgent: browsers[3]}
	add(&Campaign{Name: "API key created for persistence", Tenant: t1,
		Description: "login from a datacenter range in a new country, then an API key is created",
		Expect:      []string{"persistence-after-risky-login"},
		Events: []client.Event{
			w.login(v, at, p, dev, "s-ps"),
			simple(v, "api_key.created", at.Add(90*time.Second), p, dev, "s-ps", map[string]any{"scopes": []string{"read", "write"}}, "key-"+v.ID),
		}})

	// 9. Privilege escalation after a risky login.
	v = w.victims(t2, 1, used)[0]
	at = start.Add(12 * time.Minute)
	p = place{moscow, IPIn(moscow.Block, 301)}
	dev = Device{ID: "dev-pe", UserAgent: browsers[2]}
	pe := simple(v, "user.role.changed", at.Add(2*time.Minute), p, dev, "s-pe", map[string]any{"old_role": "member", "new_role": "admin"}, v.ID)
	add(&Campaign{Name: "privilege escalation", Tenant: t2,
		Description: "login from a new country, then the account makes itself admin",
		Expect:      []string{"privilege-escalation"},
		Events:      []client.Event{w.login(v, at, p, dev, "s-pe"), pe}})

	// 10. Scripted clients hammering the login form.
	c = &Campaign{Name: "automated client", Tenant: t2,
		Description: "python-requests and curl posting logins",
		Expect:      []string{"automated-client"}}
	for i := range 6 {
		ua := pythonUA
		if i%2 == 1 {
			ua = curlUA
		}
		c.Events = append(c.Events, failure(t2, fmt.Sprintf("admin%d", i), "unknown_user", start.Add(time.Duration(30+i)*time.Second), place{jakarta, IPIn(jakarta.Block, 400)}, ua))
	}
	add(c)

	// 11. A login from the listed hosting range (bot infrastructure).
	v = w.victims(t0, 1, used)[0]
	add(&Campaign{Name: "login from bot infrastructure", Tenant: t0,
		Description: "a successful login from a listed datacenter range",
		Expect:      []string{"bot-infrastructure"},
		Events:      []client.Event{w.login(v, start.Add(15*time.Minute), place{Hosting, IPIn(Hosting.Block, 200)}, v.Devices[0], "s-bot")}})

	return out
}

func indexOf(c City) int {
	for i, x := range Cities {
		if x.Name == c.Name {
			return i
		}
	}
	return 0
}

// Live returns benign activity in the minutes before now, so false alarms
// can be counted while campaigns run.
func (w *World) Live(now time.Time, minutes int) []client.Event {
	r := w.rng
	start := now.Add(-time.Duration(minutes) * time.Minute)
	var out []client.Event
	for i, u := range w.Users {
		if r.Float64() > 0.15 {
			continue
		}
		// Only users at work now: a benign login at 3 a.m. is rare for a reason.
		if h := localHour(now, u.Home); !u.NightShift && (h < u.StartHour || h >= u.EndHour) {
			continue
		}
		at := start.Add(time.Duration(r.IntN(minutes*60)) * time.Second)
		where := place{u.Home, u.HomeIP}
		if u.Office.IsValid() {
			where = place{u.Home, u.Office}
		}
		if u.VPN {
			where = place{CorporateVPN, IPIn(CorporateVPN.Block, 7)}
		}
		dev := u.Devices[0]
		if r.Float64() < 0.05 {
			out = append(out, typo(u, at.Add(-15*time.Second), where, dev))
		}
		out = append(out, w.login(u, at, where, dev, fmt.Sprintf("s-live-%d", i)))
	}
	return out
}
