package detect

import (
	"context"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Risk reasons, as stored on Event.Risk.Reasons.
const (
	ReasonStuffingSource   = "stuffing_source"
	ReasonImpossibleTravel = "impossible_travel"
	ReasonTor              = "tor_exit"
	ReasonDatacenter       = "datacenter"
	ReasonVPN              = "vpn"
	ReasonIPList           = "ip_list"
	ReasonAutomated        = "automated_client"
	ReasonNewCountry       = "new_country"
	ReasonNewCity          = "new_city"
	ReasonNewASN           = "new_asn"
	ReasonNewDevice        = "new_device"
	// ReasonNewCountryDevice adds weight when a never-seen country and a
	// never-seen device come together: the shape of a takeover from the
	// attacker's own machine, unlike a traveller on their own laptop or a
	// new laptop at home. With both it brings the login to a challenge.
	ReasonNewCountryDevice = "new_country_and_device"
	// ReasonRecentFailures: the account had several failed logins just
	// before this success (read from the brute-force rule's window).
	ReasonRecentFailures = "recent_failures"
	ReasonUnusualHour    = "unusual_hour"
)

// Flags the built-in rules set on sources, read by the risk score.
const (
	// FlagStuffingSource marks an address, /24 or network that credential
	// stuffing came from.
	FlagStuffingSource = "stuffing_source"
	// FlagStuffingWave marks every address that failed during a
	// distributed stuffing wave: the attack's sources, and any user who
	// happened to mistype a password meanwhile.
	FlagStuffingWave = "stuffing_wave"
)

// familiarLogin reports whether a login is the actor's routine one: a
// device, network and place the actor's profile already holds, from a
// network that is not bad and a client that is not automated. Without a
// profile, or without a device signal, nothing vouches for it.
func familiarLogin(p *Profile, ev *audit.Event) bool {
	if p == nil {
		return false
	}
	d, ok := deviceHash(ev)
	if !ok || !p.hasDevice(d) {
		return false
	}
	if automatedClient(ev) {
		return false
	}
	n := ev.Enrichment.Network
	if n != nil && (n.Tor || n.Datacenter || len(n.Lists) > 0) {
		return false
	}
	placed := false
	if n != nil && n.ASN != 0 {
		if !p.hasASN(n.ASN) {
			return false
		}
		placed = true
	}
	if g := ev.Enrichment.Geo; g != nil && g.Country != "" {
		if !p.hasValue(p.Countries, g.Country) {
			return false
		}
		placed = true
	}
	return placed
}

// sameAddressAsLast reports whether a login comes from the address of the
// actor's previous login: an office NAT or a home line where someone else
// mistyped a password during a slow wave, not an attacker's exit.
func sameAddressAsLast(p *Profile, ev *audit.Event) bool {
	if p == nil || p.LastLogin.T == 0 || !ev.Context.IP.IsValid() {
		return false
	}
	last := p.LastLogin.textBytes(textIP)
	return len(last) > 0 && string(last) == ev.Context.IP.String()
}

// automatedClient reports whether the event's user agent is scripted,
// headless or missing.
func automatedClient(ev *audit.Event) bool {
	u := ev.Enrichment.UserAgent
	if u == nil {
		return false
	}
	switch u.Class {
	case audit.UAClassScripted, audit.UAClassHeadless, audit.UAClassEmpty:
		return true
	}
	return false
}

// Decision thresholds of the risk score.
const (
	ChallengeAt = 40
	DenyAt      = 70
)

// riskParams are the profile thresholds the risk score uses (the built-in
// rules' defaults, PRODUCT.md §3).
type riskParams map[string]any

func defaultRiskParams() riskParams {
	return riskParams{
		"min_logins": int64(5), "min_days": int64(7), "far_km": int64(500),
		"max_speed_kmh": int64(900), "min_distance_km": int64(500), "familiar_after": 24 * time.Hour,
		"min_events": int64(30), "max_probability": 0.002, "org_max_probability": 0.0005, "org_min_events": int64(500),
	}
}

// riskWeights are the points each reason adds.
var riskWeights = map[string]int{
	ReasonStuffingSource: 45, ReasonImpossibleTravel: 40, ReasonTor: 40, ReasonDatacenter: 25, ReasonVPN: 10,
	ReasonIPList: 25, ReasonAutomated: 20, ReasonNewCountry: 25, ReasonNewCity: 10, ReasonNewASN: 10,
	ReasonNewDevice: 10, ReasonUnusualHour: 10, ReasonNewCountryDevice: 5,
	ReasonRecentFailures: 20,
}

// recentFailuresMin is how many failed logins on the account within
// recentFailuresSpan before a success make it a risk reason: a user's typo
// or two is not, a guessing run that ends in a success is.
const (
	recentFailuresMin  = 5
	recentFailuresSpan = 15 * time.Minute
)

// recentFailures counts the account's failed logins within
// recentFailuresSpan before t, as far as the brute-force rule's window
// still holds them (0 without that rule). It only reads.
func (e *Engine) recentFailures(ev *audit.Event, t int64) int {
	r := e.bruteForce
	if r == nil || ev.Actor.ID == "" {
		return 0
	}
	var buf [128]byte
	b := append(buf[:0], ev.Tenant...)
	b = append(b, '|')
	b = append(b, r.ID...)
	b = append(b, "|actor="...)
	b = append(b, ev.Actor.ID...)
	ks := e.keys[string(b)]
	if ks == nil {
		return 0
	}
	w := recentFailuresSpan.Milliseconds()
	n := 0
	for _, en := range ks.Entries {
		if en.T <= t && en.T > t-w {
			n++
		}
	}
	return n
}

// score computes the risk of a successful login from the actor's profile
// (as it was before the login), the network and the flags. It reads state
// only.
func (e *Engine) score(ev *audit.Event, p *Profile, in *input, tc *tenantConf) audit.Risk {
	var reasons []string
	add := func(r string) { reasons = append(reasons, r) }
	flags := in.getFlags()
	// A source flagged by single-source stuffing (IP, /24, ASN) is one.
	// An address flagged only because it failed during a distributed wave
	// may be an employee who mistyped a password while the attack ran: it
	// counts only when the login is not the actor's own routine one nor
	// from the address of the actor's previous login.
	if slices.Contains(flags, FlagStuffingSource) ||
		(slices.Contains(flags, FlagStuffingWave) && !familiarLogin(p, ev) && !sameAddressAsLast(p, ev)) {
		add(ReasonStuffingSource)
	}
	allow := in.allowlisted
	if e.recentFailures(ev, in.t) >= recentFailuresMin {
		add(ReasonRecentFailures)
	}
	if n := ev.Enrichment.Network; n != nil && !allow {
		switch {
		case n.Tor:
			add(ReasonTor)
		case n.Datacenter:
			add(ReasonDatacenter)
		case n.VPN:
			add(ReasonVPN)
		}
		if len(n.Lists) > 0 && !n.Tor && !n.Datacenter && !n.VPN {
			add(ReasonIPList)
		}
	}
	if automatedClient(ev) && ev.Context.AuthMethod != "api_key" {
		add(ReasonAutomated)
	}
	if p != nil {
		params := map[string]any(e.risk)
		if nv := newValues(p, ev, params, e.isRelay(ev, nil) || allow); nv.established {
			switch {
			case nv.country:
				add(ReasonNewCountry)
			case nv.city:
				add(ReasonNewCity)
			}
			if nv.asn && !allow {
				add(ReasonNewASN)
			}
			if nv.device {
				add(ReasonNewDevice)
			}
			if nv.country && nv.device {
				add(ReasonNewCountryDevice)
			}
		}
		if tf, ok := e.travel(p, ev, params, "last_login"); ok && !allow &&
			tf.distance > 500 && tf.speed > 900 {
			add(ReasonImpossibleTravel)
		}
		if _, rare := e.rareTime(p, ev, params); rare {
			add(ReasonUnusualHour)
		}
	}
	s := 0
	for _, r := range reasons {
		s += riskWeights[r]
	}
	s = min(s, 100)
	d := audit.DecisionAllow
	switch {
	case s >= DenyAt:
		d = audit.DecisionDeny
	case s >= ChallengeAt:
		d = audit.DecisionChallenge
	}
	return audit.Risk{Score: s, Reasons: reasons, Decision: d}
}

// Score returns the risk of a login attempt described by ev (normally an
// auth.login.success not yet sent, enriched by the caller) without changing
// any state. It is safe for concurrent use with Process: it holds the read
// lock, so it sees state as of the last completed batch.
func (e *Engine) Score(ev *audit.Event) audit.Risk {
	return e.ScoreContext(context.Background(), ev)
}

// ScoreContext is Score for a caller with a deadline: a profile that must
// be read from the state store (evicted from memory) is read under ctx, and
// is left out of the score when ctx ends first.
func (e *Engine) ScoreContext(ctx context.Context, ev *audit.Event) audit.Risk {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t := ev.Time
	if t.IsZero() {
		c := *ev
		c.Time = time.UnixMilli(e.maxT).UTC()
		ev, t = &c, c.Time
	}
	tc := e.tenantConf(ev.Tenant)
	in := &input{ev: ev, t: t.UnixMilli(), e: e, tstats: e.tstats[ev.Tenant], allowlisted: tc.allows(ev)}
	var p *Profile
	if ev.Actor.ID != "" {
		key := ev.Tenant + "|" + ev.Actor.ID
		var data []byte
		if pe := e.profiles[key]; pe != nil {
			data = pe.data
		} else if e.opts.StateStore != nil && e.profilesOut {
			data, _ = e.opts.StateStore.GetState(ctx, e.ns, "p/"+key)
		}
		if data != nil {
			p = &Profile{}
			if decodeProfile(data, p) != nil {
				p = nil
			}
		}
	}
	return e.score(ev, p, in, tc)
}
