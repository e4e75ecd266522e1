package detect

import (
	"cmp"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// A shared egress is an address, /24 (IPv6 /48) or network (ASN) through
// which many of a tenant's actors log in successfully from far away from
// every place they otherwise log in from: a corporate VPN or SASE gateway,
// a cloud proxy, a satellite link. Its location is the gateway's, not the
// user's, so once learned it counts as a relay, like a VPN that enrichment
// knows: it does not move an actor for impossible travel or concurrent
// sessions, and it is no new location.
//
// An egress is learned per tenant, in event time, when
//   - at least EgressMinActors distinct actors logged in through it more
//     than egressFarKM from where each had logged in just before through
//     another address and network ("far actors": homes far apart),
//   - those far actors are at least as many as the actors who came from
//     near it (an ISP's network, which also sees a few travellers, is
//     mostly used by the people living near it), and
//   - failed logins through it do not outnumber successful ones (a
//     stuffing source is no gateway, however many accounts it reaches).
//
// Candidates are created only by far uses, so memory grows with gateways
// and travel, not with traffic; each tenant keeps at most
// maxEgressCandidates, dropping the least recently used.
const (
	// DefaultEgressMinActors is how many far-away actors make an egress.
	DefaultEgressMinActors = 5
	egressFarKM            = 500
	maxEgressCandidates    = 2048
	maxEgressActors        = 64
)

// Egress kinds.
const (
	egressIP uint8 = iota + 1
	egressNet
	egressASN
)

// egressKey identifies a candidate egress: an address, a /24 (/48) or an ASN.
type egressKey struct {
	Kind uint8
	Addr netip.Prefix
	ASN  uint32
}

func (k egressKey) String() string {
	switch k.Kind {
	case egressIP:
		return k.Addr.Addr().String()
	case egressNet:
		return k.Addr.String()
	}
	return "AS" + strconv.FormatUint(uint64(k.ASN), 10)
}

// egressCand is what a tenant has seen of one candidate egress.
type egressCand struct {
	Far, Near []uint32 // actor hashes (at most maxEgressActors each)
	Succ      uint32   // successful logins through it
	Fail      uint32   // failed logins through it
	First     int64    `json:",omitempty"` // event time (Unix seconds) of the first far use
	Last      int64    // event time (Unix seconds) of the last use
	LearnedAt int64    `json:",omitempty"` // event time it was (last) learned; 0 while not
	Learned   bool
}

// egressTable is one tenant's candidates.
type egressTable struct {
	m map[egressKey]*egressCand
}

// egressKeys returns the event's candidate keys: address, /24 or /48, ASN.
func egressKeys(ev *audit.Event) (keys [3]egressKey, n int) {
	if ip := ev.Context.IP; ip.IsValid() {
		ip = ip.Unmap()
		keys[n] = egressKey{Kind: egressIP, Addr: netip.PrefixFrom(ip, ip.BitLen())}
		n++
		bits := 24
		if ip.Is6() {
			bits = 48
		}
		if p, err := ip.Prefix(bits); err == nil {
			keys[n] = egressKey{Kind: egressNet, Addr: p}
			n++
		}
	}
	if nw := ev.Enrichment.Network; nw != nil && nw.ASN != 0 {
		keys[n] = egressKey{Kind: egressASN, ASN: nw.ASN}
		n++
	}
	return keys, n
}

// EgressOptions tune egress learning.
type EgressOptions struct {
	// Off turns learning off: only enrichment's VPN/relay flags and the
	// tenants' allowlists count then.
	Off bool
	// MinActors is how many actors must use an egress from far away;
	// DefaultEgressMinActors when 0.
	MinActors int
	// Deny lists ranges never learned as egresses.
	Deny []netip.Prefix
}

// learnEgress folds a login into the tenant's egress candidates. p is the
// actor's profile before the login (nil for none).
func (e *Engine) learnEgress(ts *tenantStats, ev *audit.Event, p *Profile, tc *tenantConf) {
	if e.opts.Egress.Off {
		return
	}
	keys, n := egressKeys(ev)
	if n == 0 {
		return
	}
	t := ev.Time.Unix()
	if ev.Action == audit.ActionLoginFailure {
		if ts.Egress.m == nil {
			return
		}
		for _, k := range keys[:n] {
			if c := ts.Egress.m[k]; c != nil {
				c.Fail++
				c.Last = max(c.Last, t)
				e.judgeEgress(k, c, tc, t)
			}
		}
		return
	}
	if ev.Action != audit.ActionLoginSuccess || ev.Actor.ID == "" {
		return
	}
	// Where the actor was before: the last login's place, when it is a
	// reliable one. Each key compares the login with it only when that
	// login came through another egress: residents of a network are
	// near it, users of a gateway come from everywhere.
	var prev *place
	var prevIP netip.Addr
	g := ev.Enrichment.Geo
	if p != nil && p.LastLogin.T != 0 && p.LastLogin.HasLoc && !p.LastLogin.Relay && g != nil && g.HasLocation {
		prev = &p.LastLogin
		prevIP, _ = netip.ParseAddr(string(prev.textBytes(textIP)))
	}
	actor := hash32(ev.Actor.ID)
	for _, k := range keys[:n] {
		c := ts.Egress.m[k]
		judged, far := false, false
		if prev != nil && !k.covers(prevIP, prev.ASN) {
			judged = true
			far = haversineKM(float64(prev.Lat), float64(prev.Lon), g.Latitude, g.Longitude)-
				float64(prev.AccKM)-float64(g.AccuracyKM) > egressFarKM
		}
		if c == nil {
			if !far || e.egressDenied(k) || tc.forbidden.covers(k) {
				continue
			}
			if ts.Egress.m == nil {
				ts.Egress.m = map[egressKey]*egressCand{}
			}
			if len(ts.Egress.m) >= maxEgressCandidates {
				ts.Egress.evictOldest()
			}
			c = &egressCand{First: t}
			ts.Egress.m[k] = c
		}
		c.Succ++
		c.Last = max(c.Last, t)
		// An actor counts once, as first judged.
		switch {
		case !judged || slices.Contains(c.Far, actor) || slices.Contains(c.Near, actor):
		case far:
			c.Far = addActor(c.Far, actor)
		default:
			c.Near = addActor(c.Near, actor)
		}
		e.judgeEgress(k, c, tc, t)
	}
}

// covers reports whether a login from ip (in network asn) came through k.
func (k egressKey) covers(ip netip.Addr, asn uint32) bool {
	switch k.Kind {
	case egressASN:
		return asn != 0 && asn == k.ASN
	default:
		return ip.IsValid() && k.Addr.Contains(ip.Unmap())
	}
}

// judgeEgress decides whether a candidate is a learned egress now (at
// event time t). The tenant's not_egress entries are applied when the
// egress is used (isEgress), so that removing one restores what was learned.
func (e *Engine) judgeEgress(k egressKey, c *egressCand, tc *tenantConf, t int64) {
	minActors := e.opts.Egress.MinActors
	if minActors <= 0 {
		minActors = DefaultEgressMinActors
	}
	was := c.Learned
	c.Learned = len(c.Far) >= minActors && len(c.Far) >= len(c.Near) && c.Fail <= c.Succ && !e.egressDenied(k)
	if c.Learned && !was {
		c.LearnedAt = t
	}
}

func (e *Engine) egressDenied(k egressKey) bool {
	for _, d := range e.opts.Egress.Deny {
		switch k.Kind {
		case egressIP, egressNet:
			if d.Overlaps(k.Addr) && d.Bits() <= k.Addr.Bits() {
				return true
			}
		}
	}
	return false
}

func addActor(list []uint32, a uint32) []uint32 {
	if slices.Contains(list, a) || len(list) >= maxEgressActors {
		return list
	}
	return append(list, a)
}

func (t *egressTable) evictOldest() {
	var oldest egressKey
	first := true
	var at int64
	for k, c := range t.m {
		if first || c.Last < at {
			oldest, at, first = k, c.Last, false
		}
	}
	delete(t.m, oldest)
}

// isEgress reports whether the event comes through one of its tenant's
// shared egresses: one the tenant pinned (allowlist mode egress), or one
// learned, unless the tenant forbade the event's address or network (mode
// not_egress: forbidding a /24 also keeps a learned ASN around it from
// relaying the addresses in it). Pins work even with learning off.
func (e *Engine) isEgress(ev *audit.Event) bool {
	tc := e.tenantConf(ev.Tenant)
	if tc.pinned.matches(ev) {
		return true
	}
	if e.opts.Egress.Off || tc.forbidden.matches(ev) {
		return false
	}
	ts := e.tstats[ev.Tenant]
	if ts == nil || len(ts.Egress.m) == 0 {
		return false
	}
	keys, n := egressKeys(ev)
	for _, k := range keys[:n] {
		if c := ts.Egress.m[k]; c != nil && c.Learned && !tc.forbidden.covers(k) {
			return true
		}
	}
	return false
}

// Egresses lists a tenant's learned egresses (all candidates when all is
// set), most actors first.
func (e *Engine) Egresses(tenant string, all bool) []audit.Egress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ts := e.tstats[tenant]
	if ts == nil {
		return nil
	}
	tc := e.tenantConf(tenant)
	var out []audit.Egress
	for k, c := range ts.Egress.m {
		if !c.Learned && !all {
			continue
		}
		kind := [...]string{egressIP: "ip", egressNet: "net", egressASN: "asn"}[k.Kind]
		g := audit.Egress{Kind: kind, Value: k.String(), FarActors: len(c.Far), NearActors: len(c.Near),
			Successes: int(c.Succ), Failures: int(c.Fail), LastSeen: time.Unix(c.Last, 0).UTC(), Learned: c.Learned}
		if c.First != 0 {
			g.FirstSeen = time.Unix(c.First, 0).UTC()
		}
		if c.Learned && c.LearnedAt != 0 {
			g.LearnedSince = time.Unix(c.LearnedAt, 0).UTC()
		}
		switch {
		case tc.forbidden.covers(k):
			g.Tuning = "forbidden"
		case tc.pinned.covers(k):
			g.Tuning, g.Relay = "pinned", true
		default:
			g.Relay = c.Learned && !e.opts.Egress.Off
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b audit.Egress) int {
		return cmp.Or(cmp.Compare(b.FarActors, a.FarActors), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value))
	})
	return out
}

// egressJSON is a candidate as checkpointed.
type egressJSON struct {
	Kind uint8        `json:"k"`
	Addr netip.Prefix `json:"p,omitzero"`
	ASN  uint32       `json:"a,omitempty"`
	egressCand
}

// MarshalJSON writes the candidates as a list (map keys must be strings).
func (t egressTable) MarshalJSON() ([]byte, error) {
	list := make([]egressJSON, 0, len(t.m))
	for k, c := range t.m {
		list = append(list, egressJSON{Kind: k.Kind, Addr: k.Addr, ASN: k.ASN, egressCand: *c})
	}
	slices.SortFunc(list, func(a, b egressJSON) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), a.Addr.Addr().Compare(b.Addr.Addr()), cmp.Compare(a.ASN, b.ASN))
	})
	return json.Marshal(list)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (t *egressTable) UnmarshalJSON(b []byte) error {
	var list []egressJSON
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	t.m = make(map[egressKey]*egressCand, len(list))
	for _, x := range list {
		c := x.egressCand
		t.m[egressKey{Kind: x.Kind, Addr: x.Addr, ASN: x.ASN}] = &c
	}
	return nil
}
