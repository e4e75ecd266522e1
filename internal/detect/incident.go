package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Incidents
//
// Every finding belongs to one incident. A finding joins an open incident of
// its tenant when their times overlap (within incidentGap) and they share a
// link: an address, a /24 (/48) network, the targeted account, a session,
// or one distributed wave (a wave rule's finding, and any finding from an
// address the wave flagged). When a finding links several incidents they
// merge into the oldest (by first time, then id); the others are output
// with MergedInto set, and the store moves their findings. Grouping runs as
// findings change, in the engine's event-time order, and is persisted with
// the engine's state, so it is as deterministic as the findings.

// incidentGap is how far apart in event time a finding and an incident may
// be and still be one attack.
const incidentGap = time.Hour

// maxIncidentKeys bounds the link keys one incident indexes.
const maxIncidentKeys = 4096

// incState is one open incident with its link keys.
type incState struct {
	Inc  audit.Incident `json:"inc"`
	Keys []string       `json:"keys"`
	// HeadRank orders the headline candidate (see strength).
	HeadRank int `json:"head_rank"`

	dirty bool
	ev    map[string]bool // evidence ids, for dedupe (rebuilt on load)
	// evDone is, per finding id, how many of the finding's evidence ids
	// have been merged into ev and Inc.Evidence, and the last of them: a
	// finding's evidence only grows at its end, so a hit merges only the
	// new ones instead of looking up all (up to audit.MaxEvidence) again.
	// Kept and lost with ev; a missing entry, or one whose last id is not
	// where it was, means "from the start", which is always correct.
	evDone map[string]evMark
}

// evMark is how much of a finding's evidence an incident has merged.
type evMark struct {
	n    int
	last string
}

// incidentID derives an incident's id from its first finding.
func incidentID(tenant, findingID string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + findingID))
	return "inc_" + hex.EncodeToString(h[:12])
}

// weakRules are context rules: at equal severity an incident is headlined
// by an attack family instead.
var weakRules = map[string]bool{"new-location": true, "unusual-hour": true, "automated-client": true, "bot-infrastructure": true}

// takeoverRules are rules whose actor made a change after a risky login.
var takeoverRules = map[string]bool{"login-takeover-change": true, "takeover-sequence": true,
	"persistence-after-risky-login": true, "privilege-escalation": true, "exfiltration-after-change": true}

// Family is a rule's family, as incidents carry it (credential-stuffing-subnet
// is credential-stuffing): alert filters use it for findings.
func Family(rule string) string { return family(rule) }

// family is a rule's family: variants of one detection share it.
func family(rule string) string {
	for _, suf := range []string{"-installation", "-subnet", "-asn"} {
		if s, ok := strings.CutSuffix(rule, suf); ok {
			return s
		}
	}
	return rule
}

// strength orders findings for the headline: severity, then attack before
// context, then score.
func strength(f *audit.Finding) int {
	s := f.Severity.Rank()*1000 + f.Score
	if !weakRules[f.RuleID] {
		s += 500
	}
	return s
}

// linkKeys are the keys by which a finding joins an incident.
func (e *Engine) linkKeys(f *audit.Finding) []string {
	var keys []string
	addIP := func(s string) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		keys = append(keys, "ip:"+ip.String(), "net:"+subnet(ip).String())
	}
	if f.IP != "" {
		addIP(f.IP)
	}
	if f.ActorID != "" {
		keys = append(keys, "actor:"+f.ActorID)
	}
	if f.SessionID != "" {
		keys = append(keys, "session:"+f.SessionID)
	}
	if r := e.byID[f.RuleID]; r != nil && r.Flag != nil && r.Flag.Values == "distinct" {
		keys = append(keys, "wave:"+r.Flag.Name)
	}
	if f.IP != "" {
		if ip, err := netip.ParseAddr(f.IP); err == nil {
			t := f.LastSeen.UnixMilli()
			for _, name := range e.waveFlags {
				if exp, ok := e.flags[flagKey(f.Tenant, name, ip.String())]; ok && t <= exp+e.opts.AllowedLateness.Milliseconds() {
					keys = append(keys, "wave:"+name)
				}
			}
		}
	}
	return keys
}

// live reports whether f overlaps inc in time, within incidentGap.
func live(inc *audit.Incident, f *audit.Finding) bool {
	g := incidentGap
	return !f.FirstSeen.After(inc.LastSeen.Add(g)) && !f.LastSeen.Before(inc.FirstSeen.Add(-g))
}

// group assigns a finding version to its incident (creating or merging
// incidents) and records the incident's change for TakeIncidents.
func (e *Engine) group(f *audit.Finding) {
	if f.Tenant == "" {
		return // installation-wide findings are the operator's, not a tenant's incident
	}
	fk := f.Tenant + "|" + f.ID
	var cands []*incState
	addCand := func(id string) {
		if is := e.incs[id]; is != nil && !slices.Contains(cands, is) {
			cands = append(cands, is)
		}
	}
	if id, ok := e.findInc[fk]; ok {
		addCand(id)
	}
	keys := e.linkKeys(f)
	for _, k := range keys {
		if id, ok := e.incIdx[f.Tenant+"|"+k]; ok {
			if is := e.incs[id]; is != nil && live(&is.Inc, f) {
				addCand(id)
			}
		}
	}
	if slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "wave:") }) && e.findInc[fk] == "" {
		// A wave opens: incidents of addresses it flagged that began
		// before it was recognised are part of it.
		for _, id := range e.incOrder(f.Tenant) {
			is := e.incs[id]
			if live(&is.Inc, f) && e.waveFlagged(f.Tenant, is, f.LastSeen.UnixMilli()) {
				addCand(id)
			}
		}
	}
	var is *incState
	if len(cands) == 0 {
		is = &incState{Inc: audit.Incident{ID: incidentID(f.Tenant, f.ID), Tenant: f.Tenant, Status: audit.StatusOpen,
			FirstSeen: f.FirstSeen, LastSeen: f.LastSeen, CreatedAt: f.FirstSeen}, ev: map[string]bool{}}
		e.incs[is.Inc.ID] = is
		delete(e.deadIncs, is.Inc.ID)
	} else {
		slices.SortFunc(cands, func(a, b *incState) int {
			if c := a.Inc.FirstSeen.Compare(b.Inc.FirstSeen); c != 0 {
				return c
			}
			return strings.Compare(a.Inc.ID, b.Inc.ID)
		})
		is = cands[0]
		for _, o := range cands[1:] {
			e.mergeIncident(is, o)
		}
	}
	e.addFinding(is, f, keys)
	f.IncidentID = is.Inc.ID
	e.touchIncident(is)
}

// waveFlagged reports whether any address of the incident carries a wave
// flag at time t.
func (e *Engine) waveFlagged(tenant string, is *incState, t int64) bool {
	for _, ip := range is.Inc.IPs {
		for _, name := range e.waveFlags {
			if exp, ok := e.flags[flagKey(tenant, name, ip)]; ok && t <= exp+e.opts.AllowedLateness.Milliseconds() {
				return true
			}
		}
	}
	return false
}

// incOrder lists a tenant's open incidents by id (a deterministic order).
func (e *Engine) incOrder(tenant string) []string {
	var ids []string
	for id, is := range e.incs {
		if is.Inc.Tenant == tenant {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// addFinding adds (or updates) a finding in an incident.
func (e *Engine) addFinding(is *incState, f *audit.Finding, keys []string) {
	inc := &is.Inc
	fk := f.Tenant + "|" + f.ID
	if e.findInc[fk] != inc.ID {
		e.findInc[fk] = inc.ID
		inc.FindingCount++
		if len(inc.Findings) < audit.MaxIncidentItems {
			inc.Findings = append(inc.Findings, f.ID)
		}
	}
	for _, k := range keys {
		ik := f.Tenant + "|" + k
		if e.incIdx[ik] != inc.ID && len(is.Keys) < maxIncidentKeys {
			e.incIdx[ik] = inc.ID
			is.Keys = append(is.Keys, k)
		}
	}
	if f.FirstSeen.Before(inc.FirstSeen) {
		inc.FirstSeen = f.FirstSeen
		inc.CreatedAt = f.FirstSeen
	}
	if f.LastSeen.After(inc.LastSeen) {
		inc.LastSeen = f.LastSeen
	}
	inc.UpdatedAt = inc.LastSeen
	inc.Backfill = f.Backfill
	if f.Severity.Rank() > inc.Severity.Rank() {
		inc.Severity = f.Severity
	}
	inc.Score = max(inc.Score, f.Score)
	if s := strength(f); inc.HeadlineRule == "" || s > is.HeadRank || inc.HeadlineRule == f.RuleID && s >= is.HeadRank {
		is.HeadRank = s
		inc.Headline, inc.HeadlineRule, inc.Family, inc.Summary = f.RuleName, f.RuleID, family(f.RuleID), f.Explanation
		if inc.Headline == "" {
			inc.Headline = f.RuleID
		}
	}
	if i, ok := slices.BinarySearch(inc.Rules, f.RuleID); !ok {
		inc.Rules = slices.Insert(inc.Rules, i, f.RuleID)
	}
	if f.IP != "" {
		if !slices.Contains(inc.IPs, f.IP) {
			inc.IPCount++
			if len(inc.IPs) < audit.MaxIncidentItems {
				inc.IPs = append(inc.IPs, f.IP)
			}
		}
		if ip, err := netip.ParseAddr(f.IP); err == nil {
			addNetwork(inc, subnet(ip).String())
		}
	} else {
		// A finding about a network (stuffing from one /24 or one
		// provider) names no single address: its network is the source.
		sub, asn := audit.FindingNetworks(f.GroupKey)
		addNetwork(inc, sub)
		addNetwork(inc, asn)
	}
	if f.ActorID != "" {
		e.addAccount(inc, f)
	}
	e.addTimeline(inc, f)
	if is.ev == nil {
		is.ev = map[string]bool{}
		for _, id := range inc.Evidence {
			is.ev[id] = true
		}
		is.evDone = nil
	}
	if is.evDone == nil {
		is.evDone = map[string]evMark{}
	}
	done := 0
	if m := is.evDone[f.ID]; m.n > 0 && m.n <= len(f.Evidence) && f.Evidence[m.n-1] == m.last {
		done = m.n
	}
	for _, id := range f.Evidence[done:] {
		if len(inc.Evidence) >= audit.MaxIncidentEvidence {
			break
		}
		if !is.ev[id] {
			is.ev[id] = true
			inc.Evidence = append(inc.Evidence, id)
		}
	}
	if n := len(f.Evidence); n > 0 {
		is.evDone[f.ID] = evMark{n: n, last: f.Evidence[n-1]}
	}
}

// accountReason is why a finding puts its actor at risk.
func accountReason(f *audit.Finding) string {
	switch {
	case takeoverRules[f.RuleID]:
		return audit.RiskTakeoverChange
	case f.Facts["action"] == audit.ActionLoginSuccess || f.SessionID != "" && f.Facts["action"] != audit.ActionLoginFailure:
		return audit.RiskHit
	}
	return audit.RiskTargeted
}

var reasonRank = map[string]int{audit.RiskTargeted: 1, audit.RiskHit: 2, audit.RiskTakeoverChange: 3}

func (e *Engine) addAccount(inc *audit.Incident, f *audit.Finding) {
	why := accountReason(f)
	for i := range inc.Accounts {
		a := &inc.Accounts[i]
		if a.Actor != f.ActorID {
			continue
		}
		if reasonRank[why] > reasonRank[a.Reason] {
			a.Reason = why
		}
		if f.Severity.Rank() > a.Severity.Rank() {
			a.Severity = f.Severity
		}
		if !slices.Contains(a.Findings, f.ID) && len(a.Findings) < 50 {
			a.Findings = append(a.Findings, f.ID)
		}
		if f.LastSeen.After(a.LastSeen) {
			a.LastSeen = f.LastSeen
		}
		return
	}
	if len(inc.Accounts) < audit.MaxIncidentItems {
		inc.Accounts = append(inc.Accounts, audit.AccountAtRisk{Actor: f.ActorID, Reason: why, Severity: f.Severity,
			Findings: []string{f.ID}, LastSeen: f.LastSeen})
	}
}

func (e *Engine) addTimeline(inc *audit.Incident, f *audit.Finding) {
	entry := audit.TimelineEntry{Time: f.FirstSeen, LastSeen: f.LastSeen, FindingID: f.ID, RuleID: f.RuleID,
		Severity: f.Severity, Summary: f.Explanation}
	if i := slices.IndexFunc(inc.Timeline, func(t audit.TimelineEntry) bool { return t.FindingID == f.ID }); i >= 0 {
		inc.Timeline[i] = entry
	} else if len(inc.Timeline) < audit.MaxIncidentItems {
		inc.Timeline = append(inc.Timeline, entry)
	} else {
		return
	}
	slices.SortStableFunc(inc.Timeline, func(a, b audit.TimelineEntry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.FindingID, b.FindingID)
	})
}

// addNetwork lists a network (a /24, /48 or "AS64500") among the
// incident's sources, once, within the cap.
func addNetwork(inc *audit.Incident, n string) {
	if n != "" && !slices.Contains(inc.Networks, n) && len(inc.Networks) < audit.MaxIncidentItems {
		inc.Networks = append(inc.Networks, n)
	}
}

// mergeIncident folds o into is: o's findings, sources, accounts, timeline
// and evidence join is, its keys point to is, and o is output once more
// with MergedInto set, then forgotten.
func (e *Engine) mergeIncident(is, o *incState) {
	a, b := &is.Inc, &o.Inc
	for fk, id := range e.findInc {
		if id == b.ID {
			e.findInc[fk] = a.ID
		}
	}
	for _, k := range o.Keys {
		ik := b.Tenant + "|" + k
		if e.incIdx[ik] == b.ID {
			e.incIdx[ik] = a.ID
			if len(is.Keys) < maxIncidentKeys && !slices.Contains(is.Keys, k) {
				is.Keys = append(is.Keys, k)
			}
		}
	}
	a.FindingCount += b.FindingCount
	for _, id := range b.Findings {
		if len(a.Findings) < audit.MaxIncidentItems && !slices.Contains(a.Findings, id) {
			a.Findings = append(a.Findings, id)
		}
	}
	for _, ip := range b.IPs {
		if !slices.Contains(a.IPs, ip) {
			a.IPCount++
			if len(a.IPs) < audit.MaxIncidentItems {
				a.IPs = append(a.IPs, ip)
			}
		}
	}
	a.IPCount += b.IPCount - len(b.IPs) // addresses o counted but did not list
	for _, n := range b.Networks {
		addNetwork(a, n)
	}
	for _, acc := range b.Accounts {
		i := slices.IndexFunc(a.Accounts, func(x audit.AccountAtRisk) bool { return x.Actor == acc.Actor })
		switch {
		case i < 0 && len(a.Accounts) < audit.MaxIncidentItems:
			a.Accounts = append(a.Accounts, acc)
		case i >= 0:
			x := &a.Accounts[i]
			if reasonRank[acc.Reason] > reasonRank[x.Reason] {
				x.Reason = acc.Reason
			}
			if acc.Severity.Rank() > x.Severity.Rank() {
				x.Severity = acc.Severity
			}
			if acc.LastSeen.After(x.LastSeen) {
				x.LastSeen = acc.LastSeen
			}
			for _, id := range acc.Findings {
				if !slices.Contains(x.Findings, id) && len(x.Findings) < 50 {
					x.Findings = append(x.Findings, id)
				}
			}
		}
	}
	for _, t := range b.Timeline {
		if len(a.Timeline) < audit.MaxIncidentItems {
			a.Timeline = append(a.Timeline, t)
		}
	}
	slices.SortStableFunc(a.Timeline, func(x, y audit.TimelineEntry) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		return strings.Compare(x.FindingID, y.FindingID)
	})
	if is.ev == nil {
		is.ev = map[string]bool{}
		for _, id := range a.Evidence {
			is.ev[id] = true
		}
	}
	for _, id := range b.Evidence {
		if len(a.Evidence) < audit.MaxIncidentEvidence && !is.ev[id] {
			is.ev[id] = true
			a.Evidence = append(a.Evidence, id)
		}
	}
	for _, r := range b.Rules {
		if i, ok := slices.BinarySearch(a.Rules, r); !ok {
			a.Rules = slices.Insert(a.Rules, i, r)
		}
	}
	if b.FirstSeen.Before(a.FirstSeen) {
		a.FirstSeen, a.CreatedAt = b.FirstSeen, b.FirstSeen
	}
	if b.LastSeen.After(a.LastSeen) {
		a.LastSeen, a.UpdatedAt = b.LastSeen, b.LastSeen
	}
	if b.Severity.Rank() > a.Severity.Rank() {
		a.Severity = b.Severity
	}
	a.Score = max(a.Score, b.Score)
	if o.HeadRank > is.HeadRank {
		is.HeadRank = o.HeadRank
		a.Headline, a.HeadlineRule, a.Family, a.Summary = b.Headline, b.HeadlineRule, b.Family, b.Summary
	}
	// Findings of o already queued in this call move too.
	for i := range e.out {
		if e.out[i].IncidentID == b.ID {
			e.out[i].IncidentID = a.ID
		}
	}
	b.MergedInto = a.ID
	e.touchIncident(o)
	delete(e.incs, b.ID)
	if e.opts.StateStore != nil {
		e.deadIncs[b.ID] = b.Tenant
	}
}

// touchIncident queues an incident's current form for TakeIncidents.
func (e *Engine) touchIncident(is *incState) {
	if !e.incOut[is.Inc.ID] {
		e.incOut[is.Inc.ID] = true
		e.incOutOrder = append(e.incOutOrder, is)
	}
	if !is.dirty && e.opts.StateStore != nil {
		is.dirty = true
		e.dirtyIncs = append(e.dirtyIncs, is)
	}
}

// TakeIncidents implements audit.IncidentSource: the incidents opened,
// changed or merged since the last call, each once in its latest form.
func (e *Engine) TakeIncidents() []audit.Incident {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.incOutOrder) == 0 {
		return nil
	}
	out := make([]audit.Incident, 0, len(e.incOutOrder))
	for _, is := range e.incOutOrder {
		out = append(out, cloneIncident(&is.Inc))
	}
	e.incOutOrder = e.incOutOrder[:0]
	clear(e.incOut)
	return out
}

// cloneIncident copies an incident so the caller may keep it.
func cloneIncident(in *audit.Incident) audit.Incident {
	c := *in
	c.Findings = slices.Clone(in.Findings)
	c.Rules = slices.Clone(in.Rules)
	c.IPs = slices.Clone(in.IPs)
	c.Networks = slices.Clone(in.Networks)
	c.Accounts = make([]audit.AccountAtRisk, len(in.Accounts))
	for i, a := range in.Accounts {
		a.Findings = slices.Clone(a.Findings)
		c.Accounts[i] = a
	}
	c.Timeline = slices.Clone(in.Timeline)
	c.Evidence = slices.Clone(in.Evidence)
	return c
}

// expireIncidents forgets incidents no finding can join any more (their
// tenant's time is past their last activity by incidentGap and the
// lateness); they stay in the store.
func (e *Engine) expireIncidents() {
	late := e.opts.AllowedLateness.Milliseconds()
	for id, is := range e.incs {
		if is.Inc.LastSeen.UnixMilli()+incidentGap.Milliseconds()+late >= e.tenantNow(is.Inc.Tenant) {
			continue
		}
		for _, k := range is.Keys {
			if ik := is.Inc.Tenant + "|" + k; e.incIdx[ik] == id {
				delete(e.incIdx, ik)
			}
		}
		for _, f := range is.Inc.Findings {
			if fk := is.Inc.Tenant + "|" + f; e.findInc[fk] == id {
				delete(e.findInc, fk)
			}
		}
		delete(e.incs, id)
		if e.opts.StateStore != nil {
			e.deadIncs[id] = is.Inc.Tenant
		}
	}
	if len(e.findInc) > 4*len(e.incs)*audit.MaxIncidentItems+1024 {
		// Findings of expired incidents beyond the listed ones.
		for fk, id := range e.findInc {
			if e.incs[id] == nil {
				delete(e.findInc, fk)
			}
		}
	}
}

// saveIncidents adds dirty incidents to puts and forgotten ones to dels.
func (e *Engine) saveIncidents(puts map[string][]byte, dels []string) ([]string, error) {
	for _, is := range e.dirtyIncs {
		if e.incs[is.Inc.ID] != is {
			continue // merged or expired since
		}
		b, err := json.Marshal(is)
		if err != nil {
			return nil, fmt.Errorf("encode incident %s: %w", is.Inc.ID, err)
		}
		puts["i/"+is.Inc.ID] = b
	}
	for id := range e.deadIncs {
		if e.incs[id] == nil {
			dels = append(dels, "i/"+id)
		}
	}
	return dels, nil
}

// incidentsSaved clears the dirty marks after a successful save.
func (e *Engine) incidentsSaved() {
	for _, is := range e.dirtyIncs {
		is.dirty = false
	}
	e.dirtyIncs = e.dirtyIncs[:0]
	clear(e.deadIncs)
}

// loadIncident restores one persisted open incident and its index.
func (e *Engine) loadIncident(value []byte) error {
	var is incState
	if err := json.Unmarshal(value, &is); err != nil {
		return fmt.Errorf("decode incident: %w", err)
	}
	e.incs[is.Inc.ID] = &is
	for _, k := range is.Keys {
		e.incIdx[is.Inc.Tenant+"|"+k] = is.Inc.ID
	}
	for _, f := range is.Inc.Findings {
		e.findInc[is.Inc.Tenant+"|"+f] = is.Inc.ID
	}
	return nil
}

// RewriteOpenIncidents applies fn to each open incident of tenant that
// detection still holds (one a later finding may join), for an erasure:
// fn changes the incident in place and reports whether it did. Changed
// incidents are persisted at the next checkpoint; they are not handed out
// again by TakeIncidents for that (a rewrite is not a lifecycle change),
// but their next real change carries the rewritten form. Like
// ForgetProfile it is an operator action, not driven by events. It returns
// how many changed.
func (e *Engine) RewriteOpenIncidents(tenant string, fn func(*audit.Incident) bool) int {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, is := range e.incs {
		if is.Inc.Tenant != tenant || !fn(&is.Inc) {
			continue
		}
		n++
		if !is.dirty && e.opts.StateStore != nil {
			is.dirty = true
			e.dirtyIncs = append(e.dirtyIncs, is)
		}
	}
	return n
}
