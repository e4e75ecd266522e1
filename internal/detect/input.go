package detect

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// input is the CEL activation for one event: it resolves names lazily from
// the event and the engine's facts, so an expression pays only for what it
// reads. One input is reused for every rule evaluated on the event; the
// per-rule parts (params, aggregate) are swapped in between.
type input struct {
	ev          *audit.Event
	risk        *audit.Risk
	flags       []string
	flagsDone   bool
	flagFn      func() []string
	allowlisted bool
	tstats      *tenantStats
	params      map[string]any
	agg         *aggVals
}

// aggVals are the aggregate variables of a condition.
type aggVals struct {
	count, distinct, matched, maxPer, maxRisk, steps int64
	baseline, baselineM                              float64
	newVals                                          []string
	probability, speed, distance                     float64
}

var _ rulelang.Activation = (*input)(nil)

// Parent implements rulelang.Activation.
func (in *input) Parent() rulelang.Activation { return nil }

var emptyMeta = map[string]any{}

// ResolveName implements rulelang.Activation.
func (in *input) ResolveName(name string) (any, bool) {
	ev := in.ev
	if rest, ok := strings.CutPrefix(name, "event."); ok {
		return in.eventField(ev, rest)
	}
	switch name {
	case "params":
		if in.params == nil {
			return emptyMeta, true
		}
		return in.params, true
	case "risk.score":
		if in.risk == nil {
			return int64(0), true
		}
		return int64(in.risk.Score), true
	case "risk.reasons":
		if in.risk == nil {
			return []string{}, true
		}
		return in.risk.Reasons, true
	case "flags":
		if !in.flagsDone {
			in.flagsDone = true
			if in.flagFn != nil {
				in.flags = in.flagFn()
			}
		}
		if in.flags == nil {
			return []string{}, true
		}
		return in.flags, true
	case "allowlisted":
		return in.allowlisted, true
	case "tenant.logins":
		if in.tstats == nil {
			return int64(0), true
		}
		return int64(in.tstats.Logins), true
	case "tenant.device_ratio":
		if in.tstats == nil || in.tstats.Logins == 0 {
			return 0.0, true
		}
		return float64(in.tstats.WithDevice) / float64(in.tstats.Logins), true
	}
	a := in.agg
	if a == nil {
		a = &aggVals{}
	}
	switch name {
	case "count":
		return a.count, true
	case "distinct":
		return a.distinct, true
	case "matched":
		return a.matched, true
	case "max_per_value":
		return a.maxPer, true
	case "baseline":
		return a.baseline, true
	case "baseline_matched":
		return a.baselineM, true
	case "max_risk":
		return a.maxRisk, true
	case "steps":
		return a.steps, true
	case "new":
		if a.newVals == nil {
			return []string{}, true
		}
		return a.newVals, true
	case "probability":
		return a.probability, true
	case "speed_kmh":
		return a.speed, true
	case "distance_km":
		return a.distance, true
	}
	return nil, false
}

func (in *input) eventField(ev *audit.Event, name string) (any, bool) {
	switch name {
	case "id":
		return ev.ID, true
	case "tenant":
		return ev.Tenant, true
	case "action":
		return ev.Action, true
	case "outcome":
		return string(ev.Outcome), true
	case "reason":
		return ev.Reason, true
	case "hour":
		return int64(ev.Time.UTC().Hour()), true
	case "weekday":
		return int64(ev.Time.UTC().Weekday()), true
	case "actor.id":
		return ev.Actor.ID, true
	case "actor.type":
		return ev.Actor.Type, true
	case "actor.email":
		return ev.Actor.Email, true
	case "target.id":
		return ev.Target.ID, true
	case "target.type":
		return ev.Target.Type, true
	case "ctx.ip":
		if !ev.Context.IP.IsValid() {
			return "", true
		}
		return ev.Context.IP.String(), true
	case "ctx.user_agent":
		return ev.Context.UserAgent, true
	case "ctx.session_id":
		return ev.Context.SessionID, true
	case "ctx.auth_method":
		return ev.Context.AuthMethod, true
	case "ctx.device_id":
		return ev.Context.DeviceID, true
	case "metadata":
		if ev.Metadata == nil {
			return emptyMeta, true
		}
		return ev.Metadata, true
	}
	if rest, ok := strings.CutPrefix(name, "geo."); ok {
		g := ev.Enrichment.Geo
		if g == nil {
			g = &audit.Geo{}
		}
		switch rest {
		case "country":
			return g.Country, true
		case "region":
			return g.Region, true
		case "city":
			return g.City, true
		case "has_location":
			return g.HasLocation, true
		case "accuracy_km":
			return int64(g.AccuracyKM), true
		}
		return nil, false
	}
	if rest, ok := strings.CutPrefix(name, "net."); ok {
		n := ev.Enrichment.Network
		if n == nil {
			n = &audit.Network{}
		}
		switch rest {
		case "scope":
			return n.Scope, true
		case "asn":
			return int64(n.ASN), true
		case "as_org":
			return n.ASOrg, true
		case "tor":
			return n.Tor, true
		case "datacenter":
			return n.Datacenter, true
		case "vpn":
			return n.VPN, true
		case "lists":
			if n.Lists == nil {
				return []string{}, true
			}
			return n.Lists, true
		}
		return nil, false
	}
	if rest, ok := strings.CutPrefix(name, "ua."); ok {
		u := ev.Enrichment.UserAgent
		if u == nil {
			u = &audit.UserAgent{}
		}
		switch rest {
		case "class":
			return u.Class, true
		case "browser":
			return u.Browser, true
		case "os":
			return u.OS, true
		case "device":
			return u.Device, true
		}
	}
	return nil, false
}

// keyValue returns the value of one group-by key for an event, and whether
// the event has it.
func keyValue(k string, ev *audit.Event) (string, bool) {
	switch k {
	case rulelang.KeyIP:
		if !ev.Context.IP.IsValid() {
			return "", false
		}
		return ev.Context.IP.String(), true
	case rulelang.KeyIP24:
		if !ev.Context.IP.IsValid() {
			return "", false
		}
		return subnet(ev.Context.IP).String(), true
	case rulelang.KeyASN:
		if ev.Enrichment.Network == nil || ev.Enrichment.Network.ASN == 0 {
			return "", false
		}
		return fmt.Sprintf("AS%d", ev.Enrichment.Network.ASN), true
	case rulelang.KeyActor:
		return ev.Actor.ID, ev.Actor.ID != ""
	case rulelang.KeyTarget:
		return ev.Target.ID, ev.Target.ID != ""
	case rulelang.KeySession:
		return ev.Context.SessionID, ev.Context.SessionID != ""
	case rulelang.KeyTenant:
		return ev.Tenant, ev.Tenant != ""
	case rulelang.KeyInstallation:
		return "all", true
	}
	return "", false
}

// subnet is the /24 of an IPv4 address or the /48 of an IPv6 one.
func subnet(ip netip.Addr) netip.Prefix {
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// groupKey renders the group key of r for ev: "ip=203.0.113.7" or
// "actor=alice,session=s1". ok is false when the event lacks a key.
func groupKey(r *rulelang.Rule, ev *audit.Event) (string, bool) {
	if len(r.GroupBy) == 1 {
		v, ok := keyValue(r.GroupBy[0], ev)
		if !ok {
			return "", false
		}
		return r.GroupBy[0] + "=" + v, true
	}
	var b strings.Builder
	for i, k := range r.GroupBy {
		v, ok := keyValue(k, ev)
		if !ok {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String(), true
}
