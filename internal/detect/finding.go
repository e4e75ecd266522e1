package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// FindingID is the deterministic id of a finding: a hash of the tenant,
// rule, group key and the event time (ms) of the hit that opened it.
func FindingID(tenant, rule, group string, opened time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d", tenant, rule, group, opened.UnixMilli())
	return "fnd_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// severityScore is the finding score a severity implies.
func severityScore(s audit.Severity) int {
	return [...]int{0, 25, 50, 75, 90}[s.Rank()]
}

// hit opens a finding for the key or, while its suppression lasts, updates
// the open one with the new evidence, and queues it for output.
//
// ids are the evidence event ids of the hit (at most audit.MaxEvidence) and
// n the number of events it represents (n ≥ len(ids)).
func (e *Engine) hit(r *crule, ks *keyState, ev *audit.Event, in *input, t int64, ids []string, n int, first int64, facts map[string]any) {
	suppress := durParam(in.params, "suppress", r.Suppress)
	f := ks.Finding
	if f == nil || t > ks.Until {
		f = &audit.Finding{
			ID: FindingID(ks.Tenant, r.ID, ks.Group, time.UnixMilli(t)), Tenant: ks.Tenant,
			RuleID: r.ID, RuleName: r.Name, Severity: r.Severity, Status: audit.StatusOpen,
			GroupKey: ks.Group, FirstSeen: time.UnixMilli(first).UTC(), LastSeen: time.UnixMilli(t).UTC(),
		}
		f.CreatedAt = f.FirstSeen
		if slices.ContainsFunc(r.GroupBy, func(k string) bool {
			return k == rulelang.KeyActor || k == rulelang.KeySession
		}) || r.Kind == rulelang.KindMatch || r.Kind == rulelang.KindSequence {
			f.ActorID = ev.Actor.ID
		}
		if slices.Contains(r.GroupBy, rulelang.KeyIP) || r.Kind != rulelang.KindThreshold && r.Kind != rulelang.KindDistinct {
			if ev.Context.IP.IsValid() {
				f.IP = ev.Context.IP.String()
			}
		}
		if slices.Contains(r.GroupBy, rulelang.KeySession) || r.Kind != rulelang.KindThreshold && r.Kind != rulelang.KindDistinct {
			f.SessionID = ev.Context.SessionID
		}
		ks.Finding = f
		e.m.opened.Inc()
	}
	for _, id := range ids {
		if len(f.Evidence) < audit.MaxEvidence {
			if len(f.Evidence) < 64 && slices.Contains(f.Evidence, id) {
				n--
				continue
			}
			f.Evidence = append(f.Evidence, id)
		}
	}
	f.Count += max(n, 0)
	ft := time.UnixMilli(first).UTC()
	if ft.Before(f.FirstSeen) {
		f.FirstSeen = ft
	}
	if lt := time.UnixMilli(t).UTC(); lt.After(f.LastSeen) {
		f.LastSeen = lt
	}
	f.UpdatedAt = f.LastSeen
	ks.Until = max(ks.Until, t+suppress.Milliseconds())

	sev := r.Severity
	for _, esc := range r.Escalate {
		if esc.Severity.Rank() > sev.Rank() {
			if ok, _ := esc.When.Bool(in); ok {
				sev = esc.Severity
			}
		}
	}
	if sev.Rank() > f.Severity.Rank() {
		f.Severity = sev
	}
	f.Score = max(r.Risk, severityScore(f.Severity), f.Score)
	all := stdFacts(ev, len(facts)+2)
	for k, v := range facts {
		all[k] = v
	}
	all["count"] = int64(f.Count)
	if _, ok := all["span"]; !ok || r.Kind == rulelang.KindThreshold || r.Kind == rulelang.KindDistinct {
		all["span"] = fmtDur(f.LastSeen.Sub(f.FirstSeen))
	}
	f.Facts = all
	f.Explanation = render(r.Explain, all)
	f.Backfill = audit.EventBackfill(ev)
	if ks.Tenant != "" {
		f.Degraded = e.tstats[ks.Tenant].degradedNote(t)
	}

	if r.Flag != nil && r.Flag.Values == "group" && len(r.GroupBy) == 1 {
		v, _ := keyValue(r.GroupBy[0], ev)
		e.flags[flagKey(ks.Tenant, r.Flag.Name, v)] = max(e.flags[flagKey(ks.Tenant, r.Flag.Name, v)], t+r.Flag.TTL.Milliseconds())
	}
	e.emit(f, ev.ReceivedAt)
}

// emit groups a finding into its incident and queues its current form for
// this Process call; received is when the event that changed it arrived.
func (e *Engine) emit(f *audit.Finding, received time.Time) {
	e.group(f)
	if i, ok := e.outIdx[f.ID]; ok {
		e.out[i] = *f
		if received.After(e.outRecv[i]) {
			e.outRecv[i] = received
		}
		return
	}
	e.outIdx[f.ID] = len(e.out)
	e.out = append(e.out, *f)
	e.outRecv = append(e.outRecv, received)
}

// stdFacts are the facts every finding can name in its explanation.
//
// extra is how many more facts the caller will add: the map is sized for
// them all at once, as a finding's facts are built on every hit.
func stdFacts(ev *audit.Event, extra int) map[string]any {
	f := make(map[string]any, 14+len(ev.Metadata)+extra)
	f["tenant"], f["action"] = ev.Tenant, ev.Action
	if ev.Actor.ID != "" {
		f["actor"] = ev.Actor.ID
	}
	if ev.Context.IP.IsValid() {
		f["ip"] = ev.Context.IP.String()
		f["ip24"] = subnet(ev.Context.IP).String()
	}
	if ev.Context.SessionID != "" {
		f["session"] = ev.Context.SessionID
	}
	if ev.Target.ID != "" {
		f["target"] = ev.Target.ID
	}
	for k, v := range ev.Metadata {
		if s, ok := v.(string); ok && len(s) <= 128 {
			f["meta_"+k] = s
		}
	}
	if g := ev.Enrichment.Geo; g != nil {
		if g.Country != "" {
			f["country"] = g.Country
		}
		if g.City != "" {
			f["city"] = g.City
		}
	}
	f["place"] = placeName(ev)
	f["network"] = networkName(ev)
	if n := ev.Enrichment.Network; n != nil && n.ASN != 0 {
		f["asn"] = "AS" + strconv.FormatUint(uint64(n.ASN), 10)
		f["as_org"] = n.ASOrg
	}
	if u := ev.Enrichment.UserAgent; u != nil && u.Class != "" {
		f["ua_class"] = u.Class
	}
	return f
}

// placeName is "Lyon, FR", "FR" or "an unknown place".
func placeName(ev *audit.Event) string {
	g := ev.Enrichment.Geo
	switch {
	case g == nil || g.Country == "":
		return "an unknown place"
	case g.City != "":
		return g.City + ", " + g.Country
	}
	return g.Country
}

// networkName is "AS64500 Example Hosting, datacenter" or "unknown network".
func networkName(ev *audit.Event) string {
	n := ev.Enrichment.Network
	if n == nil || n.ASN == 0 && !n.Tor && !n.Datacenter && !n.VPN {
		return "unknown network"
	}
	var parts []string
	if n.ASN != 0 {
		s := "AS" + strconv.FormatUint(uint64(n.ASN), 10)
		if n.ASOrg != "" {
			s += " " + n.ASOrg
		}
		parts = append(parts, s)
	}
	var tags []string
	if n.Tor {
		tags = append(tags, "Tor exit")
	}
	if n.Datacenter {
		tags = append(tags, "datacenter")
	}
	if n.VPN {
		tags = append(tags, "VPN")
	}
	for _, l := range n.Lists {
		if len(tags) < 5 {
			tags = append(tags, "list "+l)
		}
	}
	if len(tags) > 0 {
		parts = append(parts, strings.Join(tags, ", "))
	}
	return strings.Join(parts, ", ")
}

// render replaces each {name} of tpl with the fact of that name; unknown
// names are left as they are so a typo shows.
func render(tpl string, facts map[string]any) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			break
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			b.WriteString(tpl)
			break
		}
		b.WriteString(tpl[:i])
		name := tpl[i+1 : i+j]
		if v, ok := facts[name]; ok {
			b.WriteString(factString(v))
		} else {
			b.WriteString(tpl[i : i+j+1])
		}
		tpl = tpl[i+j+1:]
	}
	return b.String()
}

func factString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
