package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/vigilhq/vigil/client"
)

// Campaign is one simulated attack: its events and which rules a detector
// should catch it with. Event ids are set, so findings can be attributed to
// the campaign through their evidence.
type Campaign struct {
	Name        string
	Description string
	// Expect is the campaign's own family: the rules whose finding (at
	// medium severity or above) on its events counts as catching it.
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

// victims picks distinct users of a tenant at random: VPN users,
// travellers and night workers as well as everyone else; only new hires,
// with too little history for anyone to know their habits, are spared.
func (w *World) victims(tenant string, n int, skip map[string]bool) []*User {
	var pool []*User
	for _, u := range w.Users {
		if u.Tenant == tenant && u.Joined <= 0 && !skip[u.ID] {
			pool = append(pool, u)
		}
	}
	var out []*User
	for len(out) < n && len(pool) > 0 {
		i := w.rng.IntN(len(pool))
		u := pool[i]
		pool = slices.Delete(pool, i, i+1)
		out = append(out, u)
		skip[u.ID] = true
	}
	return out
}

// proxy is an exit of a residential proxy network in country: a consumer
// address in one of its cities, the kind no list names and the victims
// themselves use.
func (w *World) proxy(country string, n int) place {
	var in []City
	for _, c := range Cities {
		if c.Country == country {
			in = append(in, c)
		}
	}
	if len(in) == 0 {
		in = Cities
	}
	c := in[w.rng.IntN(len(in))]
	return place{c, IPIn(c.Block, 20000+n)}
}

// abroad is a residential proxy exit in a country other than the user's.
func (w *World) abroad(u *User, n int) place {
	for {
		c := Cities[w.rng.IntN(len(Cities))]
		if c.Country != u.Home.Country && distanceKM(c, u.Home) > 1500 {
			return place{c, IPIn(c.Block, 20000+n)}
		}
	}
}

// attempt is an attacker's failed login. Tooling rotates real browser
// strings and, now and then, sends a made-up device fingerprint.
func (w *World) attempt(tenant, actor, reason string, at time.Time, p place) client.Event {
	e := failure(tenant, actor, reason, at, p, browsers[w.rng.IntN(len(browsers))])
	if w.rng.Float64() < 0.4 {
		e.Context.DeviceID = fmt.Sprintf("fp-%08x", w.rng.Uint32())
	}
	return e
}

const (
	pythonUA = "python-requests/2.31.0"
	curlUA   = "curl/8.5.0"
)

// Campaigns builds the attack campaigns. Most end shortly before now; the
// low-and-slow one runs through the day before it.
func (w *World) Campaigns(now time.Time) []*Campaign {
	r := w.rng
	used := map[string]bool{}
	t0, t1, t2 := w.Tenants[0], w.Tenants[len(w.Tenants)/2], w.Tenants[len(w.Tenants)-1]
	start := now.Add(-25 * time.Minute)
	var out []*Campaign
	add := func(c *Campaign) {
		for i := range c.Events {
			c.Events[i].ID = fmt.Sprintf("atk-%02d-%04d", len(out), i)
		}
		out = append(out, c)
	}

	// 1. Credential stuffing from one residential proxy exit in the
	// victims' country, with a hit that takes an account.
	realUsers := w.victims(t0, 40, map[string]bool{})
	stuffer := w.proxy(realUsers[0].Home.Country, 77)
	c := &Campaign{Name: "credential stuffing (one source)", Tenant: t0,
		Description: "180 identifiers tried from one residential proxy exit in 4 minutes, 1–2 attempts each",
		Expect:      []string{"credential-stuffing", "credential-stuffing-subnet", "credential-stuffing-asn"}}
	for i := range 180 {
		at := start.Add(time.Duration(i) * 1300 * time.Millisecond)
		id, reason := fmt.Sprintf("leaked%d@mail.example", i), "unknown_user"
		if i%4 == 0 {
			id, reason = realUsers[i/4%len(realUsers)].ID, "invalid_password"
		}
		c.Events = append(c.Events, w.attempt(t0, id, reason, at, stuffer))
		if i%7 == 0 {
			c.Events = append(c.Events, w.attempt(t0, id, reason, at.Add(400*time.Millisecond), stuffer))
		}
	}
	add(c)
	hitVictim := w.victims(t0, 1, used)[0]
	hitAt := start.Add(5 * time.Minute)
	dev := Device{ID: "dev-stuffer", UserAgent: hitVictim.Devices[0].UserAgent}
	hit := &Campaign{Name: "stuffing hit, then email and password change", Tenant: t0,
		Description: "a login that succeeds from the stuffing source, then the account's email and password are changed",
		Expect:      []string{"stuffing-hit", "login-takeover-change", "takeover-sequence"}}
	hit.Events = append(hit.Events,
		failure(t0, hitVictim.ID, "invalid_password", hitAt.Add(-2*time.Second), stuffer, dev.UserAgent),
		w.login(hitVictim, hitAt, stuffer, dev, "s-hit"),
		simple(hitVictim, "user.email.changed", hitAt.Add(2*time.Minute), stuffer, dev, "s-hit", map[string]any{"old": hitVictim.Email, "new": "owned@evil.example"}, hitVictim.ID),
		simple(hitVictim, "auth.password.changed", hitAt.Add(3*time.Minute), stuffer, dev, "s-hit", nil, ""))
	add(hit)

	// 2. Distributed stuffing: many residential addresses in the tenant's
	// own countries, each below the single-source threshold.
	c = &Campaign{Name: "distributed credential stuffing", Tenant: t1,
		Description: "120 residential proxy exits in the users' countries try 2 identifiers each within 10 minutes",
		Expect:      []string{"distributed-credential-stuffing", "distributed-credential-stuffing-installation"}}
	locals := w.victims(t1, 12, map[string]bool{})
	for i := range 120 {
		p := w.proxy(locals[i%len(locals)].Home.Country, 1000+i*13)
		for j := range 2 {
			at := start.Add(time.Duration(i*5+j*2) * time.Second)
			c.Events = append(c.Events, w.attempt(t1, fmt.Sprintf("combo%d@webmail.example", i*2+j), "unknown_user", at, p))
		}
	}
	add(c)

	// 3. Low and slow: one attempt per address per hour for a day, from
	// four dozen residential addresses, real and made-up accounts mixed.
	c = &Campaign{Name: "low-and-slow distributed stuffing", Tenant: t2,
		Description: "48 residential proxy exits, one attempt each per hour for 24 hours",
		Expect:      []string{"distributed-credential-stuffing-slow", "distributed-credential-stuffing"}}
	slow := w.victims(t2, 30, map[string]bool{})
	for i := range 48 {
		p := w.proxy(slow[i%len(slow)].Home.Country, 3000+i*7)
		for h := range 24 {
			at := now.Add(-24*time.Hour - 25*time.Minute + time.Duration(h)*time.Hour + time.Duration(r.IntN(3600))*time.Second)
			id, reason := fmt.Sprintf("list%d@mail.example", i*24+h), "unknown_user"
			if (i+h)%3 == 0 {
				id, reason = slow[(i*24+h)%len(slow)].ID, "invalid_password"
			}
			c.Events = append(c.Events, w.attempt(t2, id, reason, at, p))
		}
	}
	add(c)

	// 4. Brute force on one account, ending in a lockout.
	bf := w.victims(t2, 1, used)[0]
	c = &Campaign{Name: "brute force on one account", Tenant: t2,
		Description: "30 password guesses on one account from 6 residential addresses in 6 minutes, then a lockout",
		Expect:      []string{"brute-force", "lockout-attack"}}
	bfSources := make([]place, 6)
	for i := range bfSources {
		bfSources[i] = w.proxy(bf.Home.Country, 200+i)
	}
	for i := range 30 {
		reason := "invalid_password"
		if i >= 25 {
			reason = "account_locked"
		}
		c.Events = append(c.Events, w.attempt(t2, bf.ID, reason, start.Add(time.Duration(i*12)*time.Second), bfSources[i%6]))
	}
	add(c)

	// 5. Targeted takeover: a login from a residential proxy in the
	// victim's own country, with the victim's browser string on a new
	// device, then MFA removal, password change and email change.
	v := w.victims(t1, 1, used)[0]
	p := w.proxy(v.Home.Country, 91)
	at := start.Add(8 * time.Minute)
	dev = Device{ID: "dev-attacker-1", UserAgent: v.Devices[0].UserAgent}
	add(&Campaign{Name: "targeted takeover sequence", Tenant: t1,
		Description: "login from a proxy in the victim's country on a new device, then MFA removed, password and email changed",
		Expect:      []string{"takeover-sequence", "login-takeover-change"},
		Events: []client.Event{
			w.login(v, at, p, dev, "s-tk"),
			simple(v, "auth.mfa.removed", at.Add(3*time.Minute), p, dev, "s-tk", map[string]any{"factor": "totp"}, ""),
			simple(v, "auth.password.changed", at.Add(5*time.Minute), p, dev, "s-tk", nil, ""),
			simple(v, "user.email.changed", at.Add(7*time.Minute), p, dev, "s-tk", map[string]any{"old": v.Email, "new": "x@evil.example"}, v.ID),
		}})

	// 6. Impossible travel: home, then the other side of the world 25
	// minutes later on another device.
	v = w.victims(t0, 1, used)[0]
	far := w.abroad(v, 3333)
	at = start
	add(&Campaign{Name: "impossible travel", Tenant: t0,
		Description: fmt.Sprintf("login in %s, then in %s 25 minutes later", v.Home.Name, far.city.Name),
		Expect:      []string{"impossible-travel", "concurrent-sessions"},
		Events: []client.Event{
			w.login(v, at, place{v.Home, v.HomeIP}, v.Devices[0], "s-it-1"),
			w.login(v, at.Add(25*time.Minute), far, Device{ID: "dev-it", UserAgent: browsers[r.IntN(len(browsers))]}, "s-it-2"),
		}})

	// 7. Session hijack: the victim's session cookie replayed from another
	// country with another browser, then used again and again.
	v = w.victims(t2, 1, used)[0]
	at = start.Add(4 * time.Minute)
	thief := w.abroad(v, 55)
	thiefDev := Device{ID: "dev-thief", UserAgent: browsers[5]}
	if thiefDev.UserAgent == v.Devices[0].UserAgent {
		thiefDev.UserAgent = browsers[6]
	}
	add(&Campaign{Name: "session hijack", Tenant: t2,
		Description: "a session created at home is used 10 minutes later from another country with another browser",
		Expect:      []string{"session-hijack", "concurrent-sessions"},
		Events: []client.Event{
			w.login(v, at, place{v.Home, v.HomeIP}, v.Devices[0], "s-hj"),
			simple(v, "data.downloaded", at.Add(10*time.Minute), thief, thiefDev, "s-hj", map[string]any{"records": 20}, ""),
			simple(v, "data.downloaded", at.Add(12*time.Minute), thief, thiefDev, "s-hj", map[string]any{"records": 400}, ""),
		}})

	// 8. Exfiltration after a credential change (password reset flow).
	v = w.victims(t0, 1, used)[0]
	at = start.Add(6 * time.Minute)
	p = w.proxy(v.Home.Country, 12)
	dev = Device{ID: "dev-ex", UserAgent: browsers[r.IntN(len(browsers))]}
	reqEv := simple(v, "auth.password.reset", at, p, dev, "", map[string]any{"stage": "requested"}, "")
	doneEv := simple(v, "auth.password.reset", at.Add(4*time.Minute), p, dev, "", map[string]any{"stage": "completed"}, "")
	add(&Campaign{Name: "exfiltration after credential change", Tenant: t0,
		Description: "password reset completed from a new device, then 48,000 records exported",
		Expect:      []string{"exfiltration-after-change"},
		Events: []client.Event{reqEv, doneEv,
			w.login(v, at.Add(5*time.Minute), p, dev, "s-ex"),
			simple(v, "data.exported", at.Add(8*time.Minute), p, dev, "s-ex", map[string]any{"records": 48000, "bytes": 91_000_000}, "")}})

	// 9. Persistence: a risky login from rented servers, then a new API key.
	v = w.victims(t1, 1, used)[0]
	at = start.Add(10 * time.Minute)
	p = place{Hosting, IPIn(Hosting.Block, 9)}
	dev = Device{ID: "dev-ps", UserAgent: browsers[3]}
	add(&Campaign{Name: "API key created for persistence", Tenant: t1,
		Description: "login from a hosting range, then an API key is created",
		Expect:      []string{"persistence-after-risky-login"},
		Events: []client.Event{
			w.login(v, at, p, dev, "s-ps"),
			simple(v, "api_key.created", at.Add(90*time.Second), p, dev, "s-ps", map[string]any{"scopes": []string{"read", "write"}}, "key-"+v.ID),
		}})

	// 10. Privilege escalation after a risky login from abroad.
	v = w.victims(t2, 1, used)[0]
	at = start.Add(12 * time.Minute)
	p = w.abroad(v, 301)
	dev = Device{ID: "dev-pe", UserAgent: browsers[2]}
	pe := simple(v, "user.role.changed", at.Add(2*time.Minute), p, dev, "s-pe", map[string]any{"old_role": "member", "new_role": "admin"}, v.ID)
	add(&Campaign{Name: "privilege escalation", Tenant: t2,
		Description: "login from another country, then the account makes itself admin",
		Expect:      []string{"privilege-escalation"},
		Events:      []client.Event{w.login(v, at, p, dev, "s-pe"), pe}})

	// 11. Scripted clients hammering the login form.
	c = &Campaign{Name: "automated client", Tenant: t2,
		Description: "python-requests and curl posting logins",
		Expect:      []string{"automated-client"}}
	bot := w.proxy(bf.Home.Country, 400)
	for i := range 6 {
		ua := pythonUA
		if i%2 == 1 {
			ua = curlUA
		}
		c.Events = append(c.Events, failure(t2, fmt.Sprintf("admin%d", i), "unknown_user", start.Add(time.Duration(30+i)*time.Second), bot, ua))
	}
	add(c)

	// 12. A login from the hosting range (bot infrastructure).
	v = w.victims(t0, 1, used)[0]
	add(&Campaign{Name: "login from bot infrastructure", Tenant: t0,
		Description: "a successful login from a listed hosting range",
		Expect:      []string{"bot-infrastructure"},
		Events:      []client.Event{w.login(v, start.Add(15*time.Minute), place{Hosting, IPIn(Hosting.Block, 200)}, v.Devices[0], "s-bot")}})

	// 13. The real attacker at night: 03:00 in the victim's own city, the
	// victim's browser string, a new device, then an export.
	cands := w.victims(t1, 6, used)
	v = cands[0]
	for _, c := range cands {
		if !c.NightShift && !c.Evenings {
			v = c
			break
		}
	}
	night := now.Add(-24 * time.Hour).Truncate(24 * time.Hour).Add(time.Duration(3-v.Home.UTCOffset) * time.Hour)
	if night.After(start) {
		night = night.Add(-24 * time.Hour)
	}
	p = place{v.Home, IPIn(v.Home.Block, 20000+444)}
	dev = Device{ID: "dev-night", UserAgent: v.Devices[0].UserAgent}
	add(&Campaign{Name: "night login from the victim's city", Tenant: t1,
		Description: "03:00 local, the victim's city and browser string, a new device, then an export",
		Expect:      []string{"unusual-hour"},
		Events: []client.Event{
			w.login(v, night, p, dev, "s-night"),
			simple(v, "data.exported", night.Add(6*time.Minute), p, dev, "s-night", map[string]any{"records": 900}, ""),
		}})

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
		if u.Traveller && u.lastCity.Name != u.Home.Name && u.lastCity.Name != CorporateVPN.Name && now.Sub(u.lastAt) < 48*time.Hour {
			continue // still abroad, or just back: the history knows where
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
