package integrity

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// MaxErasedValues caps the distinct values one erasure collects from an
// actor's events to remove from findings and incidents.
const MaxErasedValues = 100_000

// minErasedLen is the shortest value removed from findings and incidents'
// texts: shorter ones (two-letter country codes, tiny metadata values)
// would also replace unrelated parts of words.
const minErasedLen = 3

// ErasedValues returns the distinct texts that erasing the request's
// fields removes from the actor's stored events (values already erased are
// gone and not returned): the address, user agent, e-mail, name, session
// and device ids as written, and every text inside the location,
// enrichment (city, region, network owner, browser) and metadata. Texts
// shorter than three bytes are left out. The longest come first, so a
// replacement prefers them. EINVALID when the actor has more than
// MaxErasedValues distinct values.
func (r *Recorder) ErasedValues(ctx context.Context, req audit.ErasureRequest) ([]string, error) {
	fields, err := CheckErasure(req)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	add := func(s string) {
		if len(s) >= minErasedLen && s != Erased {
			set[s] = true
		}
	}
	f := audit.EventFilter{Tenant: req.Tenant, ActorID: req.Actor, Limit: audit.MaxPageSize}
	for {
		page, err := r.opts.Events.SearchEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range page.Events {
			ev := &page.Events[i]
			if ev.Actor.ID != req.Actor {
				continue
			}
			for _, name := range fields {
				v := Value(ev, name)
				if len(v) == 0 || IsErased(ev, name) {
					continue
				}
				switch name {
				case "context.geo", "metadata", "enrichment":
					var doc any
					if err := json.Unmarshal(v, &doc); err != nil {
						return nil, fmt.Errorf("integrity: read %s of event %s: %w", name, ev.ID, err)
					}
					walkStrings(doc, add)
				default:
					add(string(v))
				}
			}
		}
		if len(set) > MaxErasedValues {
			return nil, audit.FieldErrorf("fields", "the actor's events hold more than %d distinct values of these fields; erase fewer fields at a time", MaxErasedValues)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out, nil
}

// walkStrings calls fn with every string inside a decoded JSON value.
func walkStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	case map[string]any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	}
}

// Scrubber removes erased values from findings and incidents: each
// occurrence in their texts becomes Erased, and addresses equal to one are
// dropped.
type Scrubber struct {
	set map[string]bool
	rep *strings.Replacer
}

// NewScrubber returns a scrubber of values (longest first, as ErasedValues
// returns them, so that the longest match wins).
func NewScrubber(values []string) *Scrubber {
	s := &Scrubber{set: make(map[string]bool, len(values))}
	pairs := make([]string, 0, 2*len(values))
	for _, v := range values {
		if v == "" {
			continue
		}
		s.set[v] = true
		pairs = append(pairs, v, Erased)
	}
	s.rep = strings.NewReplacer(pairs...)
	return s
}

// text returns t with the values replaced, and whether it changed.
func (s *Scrubber) text(t *string) bool {
	if len(s.set) == 0 || *t == "" {
		return false
	}
	n := s.rep.Replace(*t)
	if n == *t {
		return false
	}
	*t = n
	return true
}

// value scrubs the strings inside a decoded JSON-like value.
func (s *Scrubber) value(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		changed := s.text(&x)
		return x, changed
	case []any:
		changed := false
		for i := range x {
			var c bool
			x[i], c = s.value(x[i])
			changed = changed || c
		}
		return x, changed
	case []string:
		changed := false
		for i := range x {
			changed = s.text(&x[i]) || changed
		}
		return x, changed
	case map[string]any:
		changed := false
		for k := range x {
			var c bool
			x[k], c = s.value(x[k])
			changed = changed || c
		}
		return x, changed
	}
	return v, false
}

// Finding scrubs f's address, session, explanation and facts, and reports
// whether anything changed. Its id, group key and evidence (event ids)
// stay.
func (s *Scrubber) Finding(f *audit.Finding) bool {
	changed := false
	if f.IP != "" && s.set[f.IP] {
		f.IP, changed = "", true
	}
	changed = s.text(&f.SessionID) || changed
	changed = s.text(&f.Explanation) || changed
	for k, v := range f.Facts {
		if nv, c := s.value(v); c {
			f.Facts[k], changed = nv, true
		}
	}
	return changed
}

// Incident scrubs inc's addresses, summary, timeline summaries and
// accounts, and reports whether anything changed. Its networks (/24, /48
// or AS number) stay.
func (s *Scrubber) Incident(inc *audit.Incident) bool {
	changed := false
	ips := inc.IPs[:0]
	for _, ip := range inc.IPs {
		if s.set[ip] {
			changed = true
			continue
		}
		ips = append(ips, ip)
	}
	inc.IPs = ips
	changed = s.text(&inc.Summary) || changed
	for i := range inc.Timeline {
		changed = s.text(&inc.Timeline[i].Summary) || changed
	}
	for i := range inc.Accounts {
		changed = s.text(&inc.Accounts[i].Actor) || changed
		changed = s.text(&inc.Accounts[i].Reason) || changed
	}
	return changed
}

// DerivedReport says what EraseDerived rewrote.
type DerivedReport struct {
	Findings, Incidents int
}

// EraseDerived removes values (see ErasedValues) from what detection
// derived about one actor of tenant: the findings about the actor, and the
// incidents that hold one of them or list the actor among the accounts at
// risk. They are rewritten in place through rw, which keeps their triage
// and records no change (no alert follows).
func EraseDerived(ctx context.Context, tenant, actor string, values []string, findings audit.FindingStore, incidents audit.IncidentStore, rw audit.DerivedRewriter) (DerivedReport, error) {
	var rep DerivedReport
	if len(values) == 0 || findings == nil {
		return rep, nil
	}
	if rw == nil {
		return rep, audit.Errorf(audit.EUNAVAILABLE, "this store cannot rewrite findings and incidents")
	}
	sc := NewScrubber(values)
	incIDs := map[string]bool{}
	ff := audit.FindingFilter{Tenant: tenant, ActorID: actor, Limit: audit.MaxPageSize}
	for {
		page, err := findings.SearchFindings(ctx, ff)
		if err != nil {
			return rep, fmt.Errorf("integrity: list the findings of %s: %w", actor, err)
		}
		var changed []audit.Finding
		for _, f := range page.Findings {
			if f.ActorID != actor {
				continue
			}
			if f.IncidentID != "" {
				incIDs[f.IncidentID] = true
			}
			if sc.Finding(&f) {
				changed = append(changed, f)
			}
		}
		if err := rw.RewriteFindings(ctx, changed); err != nil {
			return rep, fmt.Errorf("integrity: rewrite the findings of %s: %w", actor, err)
		}
		rep.Findings += len(changed)
		if page.Next == "" {
			break
		}
		ff.Cursor = page.Next
	}
	if incidents == nil {
		return rep, nil
	}
	scrub := func(is []audit.Incident) error {
		var changed []audit.Incident
		for _, inc := range is {
			if sc.Incident(&inc) {
				changed = append(changed, inc)
			}
		}
		if err := rw.RewriteIncidents(ctx, changed); err != nil {
			return fmt.Errorf("integrity: rewrite the incidents of %s: %w", actor, err)
		}
		rep.Incidents += len(changed)
		return nil
	}
	inf := audit.IncidentFilter{Tenant: tenant, Limit: audit.MaxPageSize}
	for {
		page, err := incidents.SearchIncidents(ctx, inf)
		if err != nil {
			return rep, fmt.Errorf("integrity: list incidents: %w", err)
		}
		var mine []audit.Incident
		for _, inc := range page.Incidents {
			if incIDs[inc.ID] || slices.ContainsFunc(inc.Accounts, func(a audit.AccountAtRisk) bool { return a.Actor == actor }) {
				mine = append(mine, inc)
			}
			delete(incIDs, inc.ID)
		}
		if err := scrub(mine); err != nil {
			return rep, err
		}
		if page.Next == "" {
			break
		}
		inf.Cursor = page.Next
	}
	// Incidents merged into another are not listed, but still stored.
	var merged []audit.Incident
	for id := range incIDs {
		inc, err := incidents.GetIncident(ctx, tenant, id)
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("integrity: read incident %s: %w", id, err)
		}
		merged = append(merged, *inc)
	}
	return rep, scrub(merged)
}
