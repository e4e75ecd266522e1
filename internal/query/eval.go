package query

import (
	"cmp"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// This file evaluates the query language on events: field access with the
// language's "missing" semantics, the exact filter, and value comparison
// for sort, min/max and group keys. A store decides what it can of the
// filter natively (audit.EventScan); this is what decides the rest, and
// all of it when the store can decide nothing.

// getter returns the value of one field of a row: nil when missing, else a
// string, int64, time.Time, netip.Addr or []string (multi-valued fields).
type getter func(r *audit.EventRow) any

func str(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// getters maps canonical field names (query.Fields) and the output-only
// columns id and tenant to their accessors.
var getters = map[string]getter{
	"id":          func(r *audit.EventRow) any { return str(r.Event.ID) },
	"tenant":      func(r *audit.EventRow) any { return str(r.Event.Tenant) },
	"time":        func(r *audit.EventRow) any { return r.Event.Time },
	"action":      func(r *audit.EventRow) any { return str(r.Event.Action) },
	"outcome":     func(r *audit.EventRow) any { return str(string(r.Event.Outcome)) },
	"reason":      func(r *audit.EventRow) any { return str(r.Event.Reason) },
	"actor.id":    func(r *audit.EventRow) any { return str(r.Event.Actor.ID) },
	"actor.type":  func(r *audit.EventRow) any { return str(r.Event.Actor.Type) },
	"actor.email": func(r *audit.EventRow) any { return str(r.Event.Actor.Email) },
	"target.id":   func(r *audit.EventRow) any { return str(r.Event.Target.ID) },
	"target.type": func(r *audit.EventRow) any { return str(r.Event.Target.Type) },
	"ip": func(r *audit.EventRow) any {
		if !r.Event.Context.IP.IsValid() {
			return nil
		}
		return r.Event.Context.IP.Unmap()
	},
	"session":     func(r *audit.EventRow) any { return str(r.Event.Context.SessionID) },
	"user_agent":  func(r *audit.EventRow) any { return str(r.Event.Context.UserAgent) },
	"auth_method": func(r *audit.EventRow) any { return str(r.Event.Context.AuthMethod) },
	"device_id":   func(r *audit.EventRow) any { return str(r.Event.Context.DeviceID) },
	"geo.country": func(r *audit.EventRow) any {
		if g := r.Event.Enrichment.Geo; g != nil {
			return str(g.Country)
		}
		return nil
	},
	"geo.city": func(r *audit.EventRow) any {
		if g := r.Event.Enrichment.Geo; g != nil {
			return str(g.City)
		}
		return nil
	},
	"asn": func(r *audit.EventRow) any {
		if n := r.Event.Enrichment.Network; n != nil && n.ASN != 0 {
			return int64(n.ASN)
		}
		return nil
	},
	"as_org": func(r *audit.EventRow) any {
		if n := r.Event.Enrichment.Network; n != nil {
			return str(n.ASOrg)
		}
		return nil
	},
	"list": func(r *audit.EventRow) any {
		if n := r.Event.Enrichment.Network; n != nil && len(n.Lists) > 0 {
			return n.Lists
		}
		return nil
	},
	"ua.class": func(r *audit.EventRow) any {
		if u := r.Event.Enrichment.UserAgent; u != nil {
			return str(u.Class)
		}
		return nil
	},
	"ua.browser": func(r *audit.EventRow) any {
		if u := r.Event.Enrichment.UserAgent; u != nil {
			return str(u.Browser)
		}
		return nil
	},
	"risk.reason": func(r *audit.EventRow) any {
		if k := r.Event.Risk; k != nil && len(k.Reasons) > 0 {
			return k.Reasons
		}
		return nil
	},
	"risk.score": func(r *audit.EventRow) any {
		if k := r.Event.Risk; k != nil {
			return int64(k.Score)
		}
		return nil
	},
}

// getterFor returns the accessor of a field name, including
// "metadata.<key>"; ok is false for a name the runner does not know (a
// hand-built plan; parsed plans only name known fields).
func getterFor(name string) (getter, bool) {
	if g, ok := getters[name]; ok {
		return g, true
	}
	key, ok := strings.CutPrefix(name, MetadataPrefix)
	if !ok || key == "" {
		return nil, false
	}
	path := strings.Split(key, ".")
	return func(r *audit.EventRow) any { return metaValue(r.Metadata(), key, path) }, true
}

// metaValue finds metadata.<key>: the literal key first ("a.b" as one
// key), then the nested path (metadata.a.b). Values compare as strings:
// strings as they are, numbers and booleans in their JSON form, objects and
// arrays as JSON text.
func metaValue(m map[string]any, key string, path []string) any {
	if m == nil {
		return nil
	}
	v, ok := m[key]
	if !ok && len(path) > 1 {
		var cur any = m
		for _, seg := range path {
			obj, isObj := cur.(map[string]any)
			if !isObj {
				return nil
			}
			if cur, ok = obj[seg]; !ok {
				return nil
			}
		}
		v = cur
	}
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return str(x)
	default:
		return fmtScalar(x)
	}
}

// evalExpr reports whether the row matches e exactly. A comparison on a
// missing field is false, so NOT of it is true.
func evalExpr(e audit.Expr, r *audit.EventRow) bool {
	switch e := e.(type) {
	case nil:
		return true
	case *audit.AndExpr:
		for _, t := range e.Terms {
			if !evalExpr(t, r) {
				return false
			}
		}
		return true
	case *audit.OrExpr:
		for _, t := range e.Terms {
			if evalExpr(t, r) {
				return true
			}
		}
		return false
	case *audit.NotExpr:
		return !evalExpr(e.Term, r)
	case *audit.TextExpr:
		return textMatch(r, strings.ToLower(e.Text))
	case *audit.CompareExpr:
		g, ok := getterFor(e.Field)
		if !ok {
			return false
		}
		switch v := g(r).(type) {
		case nil:
			return false
		case []string:
			for _, s := range v {
				if compareOne(e, s) {
					return true
				}
			}
			return false
		default:
			return compareOne(e, v)
		}
	}
	return false
}

// compareOne applies a comparison to one present value.
func compareOne(e *audit.CompareExpr, v any) bool {
	if e.Op == audit.OpExists {
		return true
	}
	switch x := v.(type) {
	case string:
		t := e.Value.Text
		switch e.Op {
		case audit.OpEq:
			return x == t
		case audit.OpPrefix:
			return strings.HasPrefix(x, t)
		case audit.OpSuffix:
			return strings.HasSuffix(x, t)
		case audit.OpContains:
			return strings.Contains(x, t)
		}
	case int64:
		n := e.Value.Int
		switch e.Op {
		case audit.OpEq:
			return x == n
		case audit.OpLt:
			return x < n
		case audit.OpLe:
			return x <= n
		case audit.OpGt:
			return x > n
		case audit.OpGe:
			return x >= n
		}
	case netip.Addr:
		return e.Op == audit.OpIn && e.Value.Prefix.IsValid() && e.Value.Prefix.Contains(x)
	}
	return false
}

// textMatch is free text: a case-insensitive substring of the metadata
// values, actor and target ids, e-mails and names, the reason and the user
// agent. needle is lowercase.
func textMatch(r *audit.EventRow, needle string) bool {
	ev := &r.Event
	for _, s := range [...]string{ev.Actor.ID, ev.Actor.Email, ev.Actor.Name, ev.Target.ID, ev.Target.Name,
		ev.Reason, ev.Context.UserAgent} {
		if s != "" && containsFold(s, needle) {
			return true
		}
	}
	return audit.MetadataContains(r.Metadata(), needle)
}

func containsFold(s, lowerNeedle string) bool {
	return strings.Contains(strings.ToLower(s), lowerNeedle)
}

// compareValues orders two values of one column: missing first, then by
// the natural order of the type (IP addresses by family and number).
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	case netip.Addr:
		if y, ok := b.(netip.Addr); ok {
			return x.Compare(y)
		}
	case []string:
		if y, ok := b.([]string); ok {
			return slices.Compare(x, y)
		}
	}
	return strings.Compare(formatValue(a), formatValue(b))
}

// formatValue renders a value as text (CSV cells, keys of distinct sets).
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case netip.Addr:
		return x.String()
	case []string:
		return strings.Join(x, ";")
	}
	return ""
}

// appendKey appends an unambiguous binary form of v to b, for group keys.
func appendKey(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 0)
	case string:
		b = append(b, 1)
		b = strconv.AppendInt(b, int64(len(x)), 10)
		b = append(b, ':')
		return append(b, x...)
	case int64:
		b = append(b, 2)
		return strconv.AppendInt(b, x, 10)
	case time.Time:
		b = append(b, 3)
		return strconv.AppendInt(b, x.UnixNano(), 10)
	case netip.Addr:
		b = append(b, 4)
		raw, _ := x.MarshalBinary()
		b = append(b, byte(len(raw)))
		return append(b, raw...)
	}
	b = append(b, 5)
	return append(b, formatValue(v)...)
}

// fmtScalar renders a metadata number or boolean in its JSON form.
func fmtScalar(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
