package backtest

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// Suggestion bounds.
const (
	// suggestLookback is how far back resolved findings are read.
	suggestLookback = 30 * 24 * time.Hour
	// maxResolved bounds the resolved findings read.
	maxResolved = 5000
	// minBenign is how many benign findings a suggestion needs.
	minBenign = 3
	// maxSuggestions bounds the suggestions (each costs a backtest).
	maxSuggestions = 3
	// suggestRange is the history each suggestion is backtested over.
	suggestRange = 7 * 24 * time.Hour
)

// candidate is a suggestion before its backtest.
type candidate struct {
	audit.Suggestion
	covered int // benign findings it covers
}

// Suggest reads the tenant's findings resolved in the last 30 days and
// proposes up to three changes, each backtested: trusting a network (a /24
// or an AS) that several benign findings of several accounts came from and
// no malicious one did, and raising a count threshold (an integer
// parameter named min_…) just above the counts of a rule's benign findings
// when no malicious finding of the rule had a count that low. A change
// the backtest shows no effect for is dropped.
func (b *Backtester) Suggest(ctx context.Context, findings audit.FindingStore, tenant string) ([]audit.Suggestion, error) {
	now := b.opts.Now().UTC()
	var benign, malicious []audit.Finding
	f := audit.FindingFilter{Tenant: tenant, Status: audit.StatusResolved, Since: now.Add(-suggestLookback), Limit: audit.MaxPageSize}
	for n := 0; n < maxResolved; {
		page, err := findings.SearchFindings(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("resolved findings of %s: %w", tenant, err)
		}
		for _, x := range page.Findings {
			switch x.Resolution {
			case audit.ResolutionBenign:
				benign = append(benign, x)
			case audit.ResolutionMalicious:
				malicious = append(malicious, x)
			}
		}
		n += len(page.Findings)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	if len(benign) < minBenign {
		return []audit.Suggestion{}, nil
	}
	cands, err := b.networkCandidates(ctx, tenant, benign, malicious)
	if err != nil {
		return nil, err
	}
	th, err := b.thresholdCandidates(ctx, tenant, benign, malicious)
	if err != nil {
		return nil, err
	}
	cands = append(cands, th...)
	slices.SortStableFunc(cands, func(a, b candidate) int { return cmp.Compare(b.covered, a.covered) })

	out := []audit.Suggestion{}
	seen := map[string]bool{} // rule + the findings spared: an AS holding only one /24 repeats it
	for _, c := range cands {
		if len(out) == maxSuggestions {
			break
		}
		if k := c.Kind + "\x00" + c.RuleID + "\x00" + strings.Join(c.Findings, ","); seen[k] {
			continue
		} else {
			seen[k] = true
		}
		req := audit.BacktestRequest{Tenant: tenant, RuleID: c.RuleID, Params: c.Params, Since: now.Add(-suggestRange), Until: now, Samples: 1}
		if c.Allow != nil {
			req.Allow = []audit.AllowEntry{*c.Allow}
		}
		res, err := b.Run(ctx, req, nil)
		if err != nil {
			return nil, fmt.Errorf("backtest of %s on %s: %w", c.Kind, c.RuleID, err)
		}
		if res.Proposed >= res.Current {
			continue // no effect on recent history: not worth proposing
		}
		c.Effect = audit.SuggestionEffect{Since: res.Since, Until: res.Until, Current: res.Current, Proposed: res.Proposed, Truncated: res.Truncated}
		out = append(out, c.Suggestion)
	}
	return out, nil
}

// group is benign findings sharing a network.
type group struct {
	entry    audit.AllowEntry
	findings []audit.Finding
	actors   map[string]bool
}

// networkCandidates groups benign findings by /24 (IPv4) or /64 (IPv6) and
// by AS, keeping groups of several findings of several accounts that no
// malicious finding shares.
func (b *Backtester) networkCandidates(ctx context.Context, tenant string, benign, malicious []audit.Finding) ([]candidate, error) {
	groups := map[string]*group{}
	add := func(e audit.AllowEntry, f audit.Finding) {
		k := e.Kind + ":" + e.Value
		g := groups[k]
		if g == nil {
			g = &group{entry: e, actors: map[string]bool{}}
			groups[k] = g
		}
		g.findings = append(g.findings, f)
		g.actors[f.ActorID] = true
	}
	bad := map[string]bool{}
	// A finding's networks: its IP, or for findings keyed on an account,
	// the addresses of its first evidence events (with their AS, from the
	// stored enrichment). Lookups are bounded per call.
	lookups := 0
	keys := func(f audit.Finding) []audit.AllowEntry {
		type addr struct {
			ip  netip.Addr
			asn uint32
		}
		var addrs []addr
		if ip, err := netip.ParseAddr(f.IP); err == nil {
			addrs = append(addrs, addr{ip: ip.Unmap()})
		}
		for _, id := range f.Evidence[:min(3, len(f.Evidence))] {
			if lookups >= 600 {
				break
			}
			lookups++
			ev, err := b.opts.Events.GetEvent(ctx, tenant, id)
			if err != nil {
				continue
			}
			if !ev.Context.IP.IsValid() {
				continue
			}
			a := addr{ip: ev.Context.IP.Unmap()}
			if ev.Enrichment.Network != nil {
				a.asn = ev.Enrichment.Network.ASN
			}
			addrs = append(addrs, a)
		}
		seen := map[string]bool{}
		var es []audit.AllowEntry
		for _, a := range addrs {
			bits := 24
			if a.ip.Is6() {
				bits = 64
			}
			p, _ := a.ip.Prefix(bits)
			cands := []audit.AllowEntry{{Tenant: tenant, Kind: "cidr", Value: p.String()}}
			if a.asn != 0 {
				cands = append(cands, audit.AllowEntry{Tenant: tenant, Kind: "asn", Value: fmt.Sprintf("AS%d", a.asn)})
			}
			for _, e := range cands {
				if k := e.Kind + ":" + e.Value; !seen[k] {
					seen[k] = true
					es = append(es, e)
				}
			}
		}
		return es
	}
	for _, f := range malicious {
		for _, e := range keys(f) {
			bad[e.Kind+":"+e.Value] = true
		}
	}
	for _, f := range benign {
		for _, e := range keys(f) {
			add(e, f)
		}
	}
	var out []candidate
	for k, g := range groups {
		if bad[k] || len(g.findings) < minBenign || len(g.actors) < 2 {
			continue
		}
		rule := topRule(g.findings)
		var ids []string
		n := 0
		for _, f := range g.findings {
			if f.RuleID == rule {
				n++
				if len(ids) < 5 {
					ids = append(ids, f.ID)
				}
			}
		}
		e := g.entry
		e.Note = "suggested from findings resolved as benign"
		out = append(out, candidate{covered: n, Suggestion: audit.Suggestion{
			Kind: "allowlist", RuleID: rule, Allow: &e, Findings: ids,
			Reason: fmt.Sprintf("%d %s findings of %d accounts resolved as benign came from %s and none resolved as malicious did: a shared egress (office, VPN)",
				n, rule, len(g.actors), e.Value),
		}})
	}
	// Most findings first; among equals a /24 before its whole AS, then by
	// value, so the order is the same on every run.
	slices.SortFunc(out, func(a, b candidate) int {
		if c := cmp.Compare(b.covered, a.covered); c != 0 {
			return c
		}
		if c := strings.Compare(b.Allow.Kind, a.Allow.Kind); c != 0 { // "cidr" before "asn"
			return c
		}
		return strings.Compare(a.Allow.Value, b.Allow.Value)
	})
	return out, nil
}

// thresholdCandidates proposes, per rule with enough benign findings, the
// smallest count threshold above all of them, when every malicious finding
// of the rule counted more.
func (b *Backtester) thresholdCandidates(ctx context.Context, tenant string, benign, malicious []audit.Finding) ([]candidate, error) {
	byRule := map[string][]audit.Finding{}
	for _, f := range benign {
		byRule[f.RuleID] = append(byRule[f.RuleID], f)
	}
	settings, err := b.opts.Rules.ListRuleSettings(ctx, tenant)
	if err != nil {
		return nil, err
	}
	e, err := b.opts.NewEngine(nil)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range byRule {
			if !yield(k) {
				return
			}
		}
	}) {
		fs := byRule[id]
		rule := ruleByID(e, id)
		if rule == nil || len(fs) < minBenign {
			continue
		}
		hi := 0
		for _, f := range fs {
			hi = max(hi, f.Count)
		}
		lowestBad := -1
		for _, f := range malicious {
			if f.RuleID == id && (lowestBad < 0 || f.Count < lowestBad) {
				lowestBad = f.Count
			}
		}
		if lowestBad >= 0 && lowestBad <= hi {
			continue // raising the bar would have missed a real attack
		}
		p, current, ok := countThreshold(rule, settings)
		if !ok || current > hi || (p.Max != nil && float64(hi+1) > *p.Max) {
			continue
		}
		var ids []string
		for _, f := range fs[:min(5, len(fs))] {
			ids = append(ids, f.ID)
		}
		out = append(out, candidate{covered: len(fs), Suggestion: audit.Suggestion{
			Kind: "threshold", RuleID: id, Params: map[string]any{p.Name: hi + 1}, Findings: ids,
			Reason: fmt.Sprintf("%d %s findings resolved as benign counted at most %d (the threshold %s is %d)", len(fs), id, hi, p.Name, current),
		}})
	}
	return out, nil
}

// countThreshold finds the rule's count threshold: its integer parameter
// named min_…, with the tenant's value in effect.
func countThreshold(r *rulelang.Rule, settings []audit.RuleSetting) (rulelang.Param, int, bool) {
	for _, p := range r.Params {
		if p.Type != "int" || !strings.HasPrefix(p.Name, "min_") {
			continue
		}
		eff := map[string]any{}
		for _, s := range settings {
			if s.RuleID == r.ID {
				eff = s.Params
			}
		}
		vals, err := r.ValidateParams(eff)
		if err != nil {
			return p, 0, false
		}
		switch v := vals[p.Name].(type) {
		case int:
			return p, v, true
		case int64:
			return p, int(v), true
		case float64:
			return p, int(v), true
		}
	}
	return rulelang.Param{}, 0, false
}

// topRule is the rule with the most findings among fs (ties: the first id).
func topRule(fs []audit.Finding) string {
	n := map[string]int{}
	for _, f := range fs {
		n[f.RuleID]++
	}
	best := ""
	for id, c := range n {
		if best == "" || c > n[best] || (c == n[best] && id < best) {
			best = id
		}
	}
	return best
}
