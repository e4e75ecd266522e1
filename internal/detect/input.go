package detect

import (
	"fmt"
	"net/netip"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// input is the activation of one event's expressions: variables resolve
// lazily from the event and the engine's facts, so an expression pays only
// for what it reads, and values that cost something to compute (flags, the
// address as text) are computed once per event. One input is reused for
// every rule evaluated on the event; the per-rule parts (params, aggregate)
// are swapped in between. It implements rulelang.Vars (native evaluation)
// and rulelang.Activation (the cel-go fallback).
type input struct {
	ev          *audit.Event
	t           int64 // event time, ms
	e           *Engine
	risk        *audit.Risk
	flags       []string
	flagsDone   bool
	allowlisted bool
	tstats      *tenantStats
	params      map[string]any
	agg         *aggVals
	aggBuf      aggVals

	fbuf []byte // scratch for flag keys

	// group key values, computed on first use
	ipS, ip24S, asnS string
	keysDone         uint8
}

// aggVals are the aggregate variables of a condition.
type aggVals struct {
	count, distinct, matched, maxPer, maxRisk, steps int64
	baseline, baselineM                              float64
	newVals                                          []string
	probability, speed, distance                     float64
}

// setAgg makes a the current aggregate (held in the input's buffer).
func (in *input) setAgg(a aggVals) *aggVals {
	in.aggBuf = a
	in.agg = &in.aggBuf
	return in.agg
}

var (
	_ rulelang.Activation = (*input)(nil)
	_ rulelang.Vars       = (*input)(nil)
)

// Parent implements rulelang.Activation.
func (in *input) Parent() rulelang.Activation { return nil }

// ResolveName implements rulelang.Activation (the cel-go fallback).
func (in *input) ResolveName(name string) (any, bool) {
	id := rulelang.VarID(name)
	if id < 0 {
		return nil, false
	}
	return in.Var(id).Native(), true
}

// Var implements rulelang.Vars.
func (in *input) Var(id int) rulelang.Value {
	return in.e.resolvers[id](in)
}

// getFlags returns the flags live on the event's sources, computed once.
func (in *input) getFlags() []string {
	if !in.flagsDone {
		in.flagsDone = true
		if in.e != nil {
			in.flags = in.e.activeFlags(in, in.flags[:0])
		}
	}
	return in.flags
}

var (
	emptyMeta    = map[string]any{}
	emptyStrings = []string{}
)

// resolver computes one variable.
type resolver func(in *input) rulelang.Value

func str(s string) rulelang.Value { return rulelang.StringVal(s) }

// Zero enrichment parts, read when an event lacks one (never written).
var (
	noGeo audit.Geo
	noNet audit.Network
	noUA  audit.UserAgent
	noAgg aggVals
)

func geoOf(in *input) *audit.Geo {
	if g := in.ev.Enrichment.Geo; g != nil {
		return g
	}
	return &noGeo
}

func netOf(in *input) *audit.Network {
	if n := in.ev.Enrichment.Network; n != nil {
		return n
	}
	return &noNet
}

func uaOf(in *input) *audit.UserAgent {
	if u := in.ev.Enrichment.UserAgent; u != nil {
		return u
	}
	return &noUA
}

func strsOrEmpty(l []string) rulelang.Value {
	if l == nil {
		return rulelang.StringsVal(emptyStrings)
	}
	return rulelang.StringsVal(l)
}

func aggOf(in *input) *aggVals {
	if in.agg == nil {
		return &noAgg
	}
	return in.agg
}

// varResolvers resolves every variable name of rulelang.
func varResolvers() map[string]resolver {
	return map[string]resolver{
		"event.id":              func(in *input) rulelang.Value { return str(in.ev.ID) },
		"event.tenant":          func(in *input) rulelang.Value { return str(in.ev.Tenant) },
		"event.action":          func(in *input) rulelang.Value { return str(in.ev.Action) },
		"event.outcome":         func(in *input) rulelang.Value { return str(string(in.ev.Outcome)) },
		"event.reason":          func(in *input) rulelang.Value { return str(in.ev.Reason) },
		"event.hour":            func(in *input) rulelang.Value { return rulelang.IntVal(int64(in.ev.Time.UTC().Hour())) },
		"event.weekday":         func(in *input) rulelang.Value { return rulelang.IntVal(int64(in.ev.Time.UTC().Weekday())) },
		"event.actor.id":        func(in *input) rulelang.Value { return str(in.ev.Actor.ID) },
		"event.actor.type":      func(in *input) rulelang.Value { return str(in.ev.Actor.Type) },
		"event.actor.email":     func(in *input) rulelang.Value { return str(in.ev.Actor.Email) },
		"event.target.id":       func(in *input) rulelang.Value { return str(in.ev.Target.ID) },
		"event.target.type":     func(in *input) rulelang.Value { return str(in.ev.Target.Type) },
		"event.ctx.ip":          func(in *input) rulelang.Value { s, _ := in.keyValue(rulelang.KeyIP); return str(s) },
		"event.ctx.user_agent":  func(in *input) rulelang.Value { return str(in.ev.Context.UserAgent) },
		"event.ctx.session_id":  func(in *input) rulelang.Value { return str(in.ev.Context.SessionID) },
		"event.ctx.auth_method": func(in *input) rulelang.Value { return str(in.ev.Context.AuthMethod) },
		"event.ctx.device_id":   func(in *input) rulelang.Value { return str(in.ev.Context.DeviceID) },
		"event.geo.country":     func(in *input) rulelang.Value { return str(geoOf(in).Country) },
		"event.geo.region":      func(in *input) rulelang.Value { return str(geoOf(in).Region) },
		"event.geo.city":        func(in *input) rulelang.Value { return str(geoOf(in).City) },
		"event.geo.has_location": func(in *input) rulelang.Value {
			return rulelang.BoolVal(geoOf(in).HasLocation)
		},
		"event.geo.accuracy_km": func(in *input) rulelang.Value { return rulelang.IntVal(int64(geoOf(in).AccuracyKM)) },
		"event.net.scope":       func(in *input) rulelang.Value { return str(netOf(in).Scope) },
		"event.net.asn":         func(in *input) rulelang.Value { return rulelang.IntVal(int64(netOf(in).ASN)) },
		"event.net.as_org":      func(in *input) rulelang.Value { return str(netOf(in).ASOrg) },
		"event.net.tor":         func(in *input) rulelang.Value { return rulelang.BoolVal(netOf(in).Tor) },
		"event.net.datacenter":  func(in *input) rulelang.Value { return rulelang.BoolVal(netOf(in).Datacenter) },
		"event.net.vpn":         func(in *input) rulelang.Value { return rulelang.BoolVal(netOf(in).VPN) },
		"event.net.lists":       func(in *input) rulelang.Value { return strsOrEmpty(netOf(in).Lists) },
		"event.ua.class":        func(in *input) rulelang.Value { return str(uaOf(in).Class) },
		"event.ua.browser":      func(in *input) rulelang.Value { return str(uaOf(in).Browser) },
		"event.ua.os":           func(in *input) rulelang.Value { return str(uaOf(in).OS) },
		"event.ua.device":       func(in *input) rulelang.Value { return str(uaOf(in).Device) },
		"event.metadata": func(in *input) rulelang.Value {
			if in.ev.Metadata == nil {
				return rulelang.MapVal(emptyMeta)
			}
			return rulelang.MapVal(in.ev.Metadata)
		},
		"risk.score": func(in *input) rulelang.Value {
			if in.risk == nil {
				return rulelang.IntVal(0)
			}
			return rulelang.IntVal(int64(in.risk.Score))
		},
		"risk.reasons": func(in *input) rulelang.Value {
			if in.risk == nil {
				return strsOrEmpty(nil)
			}
			return strsOrEmpty(in.risk.Reasons)
		},
		"flags":       func(in *input) rulelang.Value { return strsOrEmpty(in.getFlags()) },
		"allowlisted": func(in *input) rulelang.Value { return rulelang.BoolVal(in.allowlisted) },
		"tenant.logins": func(in *input) rulelang.Value {
			if in.tstats == nil {
				return rulelang.IntVal(0)
			}
			return rulelang.IntVal(int64(in.tstats.Logins))
		},
		"tenant.device_ratio": func(in *input) rulelang.Value {
			if in.tstats == nil || in.tstats.Logins == 0 {
				return rulelang.DoubleVal(0)
			}
			return rulelang.DoubleVal(float64(in.tstats.WithDevice) / float64(in.tstats.Logins))
		},
		"params": func(in *input) rulelang.Value {
			if in.params == nil {
				return rulelang.MapVal(emptyMeta)
			}
			return rulelang.MapVal(in.params)
		},
		"count":            func(in *input) rulelang.Value { return rulelang.IntVal(aggOf(in).count) },
		"distinct":         func(in *input) rulelang.Value { return rulelang.IntVal(aggOf(in).distinct) },
		"matched":          func(in *input) rulelang.Value { return rulelang.IntVal(aggOf(in).matched) },
		"max_per_value":    func(in *input) rulelang.Value { return rulelang.IntVal(aggOf(in).maxPer) },
		"baseline":         func(in *input) rulelang.Value { return rulelang.DoubleVal(aggOf(in).baseline) },
		"baseline_matched": func(in *input) rulelang.Value { return rulelang.DoubleVal(aggOf(in).baselineM) },
		"max_risk":         func(in *input) rulelang.Value { return rulelang.IntVal(aggOf(in).maxRisk) },
		"steps":            func(in *input) rulelang.Value { return rulelang.IntVal(aggOf(in).steps) },
		"new":              func(in *input) rulelang.Value { return strsOrEmpty(aggOf(in).newVals) },
		"probability":      func(in *input) rulelang.Value { return rulelang.DoubleVal(aggOf(in).probability) },
		"speed_kmh":        func(in *input) rulelang.Value { return rulelang.DoubleVal(aggOf(in).speed) },
		"distance_km":      func(in *input) rulelang.Value { return rulelang.DoubleVal(aggOf(in).distance) },
	}
}

// buildResolvers indexes varResolvers by rulelang variable id. A variable
// rulelang declares but the engine cannot resolve is a programmer error
// caught by every test that builds an engine.
func buildResolvers() ([]resolver, error) {
	all := varResolvers()
	out := make([]resolver, rulelang.NumVars())
	for id := range out {
		r := all[rulelang.VarName(id)]
		if r == nil {
			return nil, fmt.Errorf("detect: no resolver for rule variable %q", rulelang.VarName(id))
		}
		out[id] = r
	}
	return out, nil
}

// keyValue returns the event's value of one group-by key, computing the
// textual address, /24 and ASN once per event.
func (in *input) keyValue(k string) (string, bool) {
	ev := in.ev
	switch k {
	case rulelang.KeyIP, rulelang.KeyIP24:
		if !ev.Context.IP.IsValid() {
			return "", false
		}
		if in.keysDone&1 == 0 {
			in.keysDone |= 1
			in.ipS = ev.Context.IP.String()
		}
		if k == rulelang.KeyIP {
			return in.ipS, true
		}
		if in.keysDone&2 == 0 {
			in.keysDone |= 2
			in.ip24S = subnet(ev.Context.IP).String()
		}
		return in.ip24S, true
	case rulelang.KeyASN:
		if ev.Enrichment.Network == nil || ev.Enrichment.Network.ASN == 0 {
			return "", false
		}
		if in.keysDone&4 == 0 {
			in.keysDone |= 4
			in.asnS = "AS" + asnString(ev.Enrichment.Network.ASN)
		}
		return in.asnS, true
	}
	return keyValue(k, ev)
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

// appendGroupKey appends the group key of r for the event to b:
// "ip=203.0.113.7" or "actor=alice,session=s1". ok is false when the event
// lacks a key.
func (in *input) appendGroupKey(b []byte, r *rulelang.Rule) ([]byte, bool) {
	for i, k := range r.GroupBy {
		v, ok := in.keyValue(k)
		if !ok {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
	}
	return b, true
}
