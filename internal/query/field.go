package query

import (
	"slices"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// Field describes one queryable event field for the parser, the SQL
// compiler and the documentation.
type Field struct {
	// Name is the canonical name used in queries ("actor.id").
	Name string
	// Path is where the value lives in the stored event's JSON form
	// ("context.session_id", "enrichment.geo.country").
	Path string
	// Type decides the operators and the operand type.
	Type audit.FieldType
	// Groupable fields may be "stats ... by" keys and dc() arguments.
	Groupable bool
	// Aggregatable fields may be min() and max() arguments.
	Aggregatable bool
	// Sortable fields may be sort keys while rows are still events.
	Sortable bool
	// Multi marks a field holding several values per event (list): a
	// comparison matches when any value matches.
	Multi bool
	// Min and Max bound the values of a number field.
	Min, Max int64
	// Values, when set, is the closed set an equality must name.
	Values []string
	// Doc is a one-line description.
	Doc string
}

// MetadataPrefix starts the name of a metadata field: "metadata.<key>",
// where the key is one or more dot-separated segments of ASCII letters,
// digits, '_' or '-'. Metadata values are compared as strings.
const MetadataPrefix = "metadata."

// MaxMetadataKeyBytes is the longest metadata key in a field name.
const MaxMetadataKeyBytes = 128

var fields = []Field{
	{Name: "time", Path: "time", Type: audit.FieldTime, Aggregatable: true, Sortable: true,
		Doc: "event time; only >, >=, <, <= at the top level; group with bin(time, width)"},
	{Name: "action", Path: "action", Type: audit.FieldText, Groupable: true, Sortable: true,
		Doc: "dot-namespaced event name, lowercased; auth.login.* matches by prefix"},
	{Name: "outcome", Path: "outcome", Type: audit.FieldText, Groupable: true, Sortable: true,
		Values: []string{string(audit.OutcomeSuccess), string(audit.OutcomeFailure)}, Doc: "success or failure"},
	{Name: "reason", Path: "reason", Type: audit.FieldText, Groupable: true, Sortable: true,
		Doc: "failure or logout reason (invalid_password, unknown_user, …)"},
	{Name: "actor.id", Path: "actor.id", Type: audit.FieldText, Groupable: true, Sortable: true,
		Doc: "who did it; for auth.login.failure the attempted identifier"},
	{Name: "actor.type", Path: "actor.type", Type: audit.FieldText, Groupable: true, Sortable: true,
		Values: audit.ActorTypes, Doc: "user, api_key, service or anonymous"},
	{Name: "actor.email", Path: "actor.email", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "actor e-mail address"},
	{Name: "target.id", Path: "target.id", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "what the action was done to"},
	{Name: "target.type", Path: "target.type", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "the target's type"},
	{Name: "ip", Path: "context.ip", Type: audit.FieldIP, Groupable: true, Sortable: true,
		Doc: "client IP; an address or a CIDR prefix (203.0.113.0/24)"},
	{Name: "session", Path: "context.session_id", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "session id"},
	{Name: "user_agent", Path: "context.user_agent", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "raw user-agent string"},
	{Name: "auth_method", Path: "context.auth_method", Type: audit.FieldText, Groupable: true, Sortable: true,
		Doc: "password, sso, magic_link, passkey, oauth, api_key, other"},
	{Name: "device_id", Path: "context.device_id", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "browser fingerprint"},
	{Name: "geo.country", Path: "enrichment.geo.country", Type: audit.FieldText, Groupable: true, Sortable: true,
		Doc: "ISO 3166-1 alpha-2 country, uppercased"},
	{Name: "geo.city", Path: "enrichment.geo.city", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "city name"},
	{Name: "asn", Path: "enrichment.network.asn", Type: audit.FieldNumber, Groupable: true, Aggregatable: true, Sortable: true,
		Min: 0, Max: 1<<32 - 1, Doc: "autonomous system number (0–4294967295)"},
	{Name: "as_org", Path: "enrichment.network.as_org", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "AS organisation"},
	{Name: "list", Path: "enrichment.network.lists", Type: audit.FieldText, Multi: true,
		Doc: "name of an IP list the address is on (tor, datacenter, …); matches any"},
	{Name: "ua.class", Path: "enrichment.user_agent.class", Type: audit.FieldText, Groupable: true, Sortable: true,
		Values: []string{audit.UAClassBrowser, audit.UAClassMobileApp, audit.UAClassCrawler, audit.UAClassScripted,
			audit.UAClassHeadless, audit.UAClassEmpty, audit.UAClassUnknown},
		Doc: "user-agent class"},
	{Name: "ua.browser", Path: "enrichment.user_agent.browser", Type: audit.FieldText, Groupable: true, Sortable: true, Doc: "browser family"},
	{Name: "risk.reason", Path: "risk.reasons", Type: audit.FieldText, Multi: true,
		Doc: "a reason of the login's risk score (new_country, new_asn, …); matches any"},
	{Name: "risk.score", Path: "risk.score", Type: audit.FieldNumber, Groupable: true, Aggregatable: true, Sortable: true,
		Min: 0, Max: 100, Doc: "login risk score (0–100)"},
}

// aliases maps accepted spellings to canonical names.
var aliases = map[string]string{
	"context.ip":          "ip",
	"context.session_id":  "session",
	"session_id":          "session",
	"context.user_agent":  "user_agent",
	"context.auth_method": "auth_method",
	"context.device_id":   "device_id",
}

// Fields returns the queryable fields, in documentation order. Metadata
// fields ("metadata.<key>") are not listed; LookupField describes them.
func Fields() []Field {
	out := slices.Clone(fields)
	for i := range out {
		out[i].Values = slices.Clone(out[i].Values)
	}
	return out
}

// LookupField returns the field a name (or alias) denotes, with its
// canonical Name; "metadata.<key>" gives a groupable, sortable text field.
func LookupField(name string) (Field, bool) {
	if c, ok := aliases[name]; ok {
		name = c
	}
	for _, f := range fields {
		if f.Name == name {
			f.Values = slices.Clone(f.Values)
			return f, true
		}
	}
	if key, ok := strings.CutPrefix(name, MetadataPrefix); ok && validMetadataKey(key) {
		return Field{Name: name, Path: name, Type: audit.FieldText, Groupable: true, Sortable: true,
			Doc: "metadata value, compared as a string"}, true
	}
	return Field{}, false
}

// validMetadataKey reports whether key is dot-separated segments of ASCII
// letters, digits, '_' or '-', at most MaxMetadataKeyBytes long. The narrow
// alphabet lets a compiler build a JSON path without quoting.
func validMetadataKey(key string) bool {
	if key == "" || len(key) > MaxMetadataKeyBytes {
		return false
	}
	for seg := range strings.SplitSeq(key, ".") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// suggestField returns the known field name closest to name, or "" when
// none is close. Confusable letters (a Cyrillic і for i) count as one edit.
func suggestField(name string) string {
	lower := strings.ToLower(name)
	best, bestD := "", 3
	candidates := make([]string, 0, len(fields)+len(aliases)+1)
	for _, f := range fields {
		candidates = append(candidates, f.Name)
	}
	for a := range aliases {
		candidates = append(candidates, a)
	}
	slices.Sort(candidates[len(fields):])
	for _, c := range candidates {
		if d := editDistance(lower, c); d < bestD {
			best, bestD = c, d
		}
	}
	if c, ok := aliases[best]; ok {
		return c
	}
	if best == "" && strings.HasPrefix(lower, "metadata") {
		return "metadata.<key>"
	}
	return best
}

// suggestWord returns the word of candidates closest to w (at most two
// edits away), or "".
func suggestWord(w string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(w), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b in runes,
// computed with two rows; inputs are short (names), and long ones are cut
// off early because they cannot be close.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 99
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
