package audit

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
)

// Matches reports whether ev satisfies the filter: its tenant (unless
// AllTenants), time range, action and every other condition, exactly as
// SearchEvents defines them. A store narrows the candidates with its own
// indexes and checks each candidate with Matches, so every backend filters
// alike. Limit and Cursor are paging, not conditions, and are ignored.
func (f *EventFilter) Matches(ev *Event) bool {
	switch {
	case f.Tenant != "" && ev.Tenant != f.Tenant,
		!f.Since.IsZero() && ev.Time.Before(f.Since),
		!f.Until.IsZero() && !ev.Time.Before(f.Until),
		f.Action != "" && !actionMatches(f.Action, ev.Action),
		f.ActorID != "" && ev.Actor.ID != f.ActorID,
		f.SessionID != "" && ev.Context.SessionID != f.SessionID,
		f.TargetID != "" && ev.Target.ID != f.TargetID,
		f.IP.IsValid() && !unmapPrefix(f.IP).Contains(ev.Context.IP.Unmap()),
		f.Outcome != "" && ev.Outcome != f.Outcome:
		return false
	}
	en := &ev.Enrichment
	switch {
	case f.Country != "" && (en.Geo == nil || !strings.EqualFold(en.Geo.Country, f.Country)),
		f.ASN != 0 && (en.Network == nil || en.Network.ASN != f.ASN),
		f.List != "" && (en.Network == nil || !slices.Contains(en.Network.Lists, f.List)),
		f.UAClass != "" && (en.UserAgent == nil || en.UserAgent.Class != f.UAClass),
		f.Text != "" && !MetadataContains(ev.Metadata, strings.ToLower(f.Text)):
		return false
	}
	return true
}

// actionMatches applies EventFilter.Action: an exact name, or with a
// trailing ".*" every name under that prefix.
func actionMatches(want, action string) bool {
	if prefix, ok := strings.CutSuffix(want, ".*"); ok {
		return strings.HasPrefix(action, prefix+".")
	}
	return action == want
}

// unmapPrefix returns p masked, with an IPv4-mapped IPv6 prefix turned
// into the IPv4 prefix it denotes, the form events store addresses in.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() {
		q, _ := a.Unmap().Prefix(max(p.Bits()-96, 0))
		return q
	}
	return p.Masked()
}

// MetadataContains reports whether any value within v (event metadata, at
// any depth) contains needle, which must be lowercase, case-insensitively.
// Strings are searched as they are, numbers and booleans in their JSON
// form. It is the free-text match of both the search API and the query
// language.
func MetadataContains(v any, needle string) bool {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if MetadataContains(e, needle) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if MetadataContains(e, needle) {
				return true
			}
		}
	case string:
		return strings.Contains(strings.ToLower(x), needle)
	case nil:
	default:
		b, err := json.Marshal(x)
		return err == nil && strings.Contains(strings.ToLower(string(b)), needle)
	}
	return false
}
