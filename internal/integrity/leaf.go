package integrity

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// DayLayout is how a chain's day is written.
const DayLayout = "2006-01-02"

// Day returns the chain day of an event time.
func Day(t time.Time) string { return t.UTC().Format(DayLayout) }

// Fields are the event fields a leaf covers, in leaf order. Tenant, ID and
// Time are covered directly; every other stored field is covered by name
// and the SHA-256 of its value, so an erased value can be replaced by
// Erased and the leaf recomputed from the hash kept in an erasure record.
var Fields = []string{
	"action", "outcome", "reason",
	"actor.id", "actor.type", "actor.email", "actor.name",
	"target.type", "target.id", "target.name",
	"context.ip", "context.user_agent", "context.session_id", "context.request_id",
	"context.auth_method", "context.device_id", "context.geo",
	"metadata", "enrichment", "risk", "received_at",
}

// Erasable are the fields an erasure may redact: what identifies or
// locates a person. Identifiers that key detection and search (actor.id,
// event ids) and the action itself stay.
var Erasable = []string{
	"actor.email", "actor.name", "target.name",
	"context.ip", "context.user_agent", "context.session_id", "context.device_id", "context.geo",
	"metadata", "enrichment",
}

// Erased is the value an erased text field holds. Erased addresses,
// locations, metadata and enrichment are removed instead.
const Erased = "[erased]"

// Value returns the canonical bytes of one field of ev (nil for an unknown
// name). Text is its UTF-8, the address its text form, structured values
// their JSON (object keys sorted), received_at its UTC Unix nanoseconds; an
// absent value is empty.
func Value(ev *audit.Event, field string) []byte {
	if v, ok := appendText([]byte{}, ev, field); ok {
		return v
	}
	switch field {
	case "context.geo":
		if ev.Context.Geo == nil {
			return []byte{}
		}
		return jsonValue(ev.Context.Geo)
	case "metadata":
		if len(ev.Metadata) == 0 {
			return []byte{}
		}
		return jsonValue(ev.Metadata)
	case "enrichment":
		e := ev.Enrichment
		if e.Geo == nil && e.Network == nil && e.UserAgent == nil {
			return []byte{}
		}
		return jsonValue(e)
	case "risk":
		if ev.Risk == nil {
			return []byte{}
		}
		return jsonValue(ev.Risk)
	}
	return nil
}

func jsonValue(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Stored events always marshal (they came from JSON); an event that
		// does not gets a value no original can have.
		return []byte("\x00unencodable")
	}
	return b
}

// IsErased reports whether field of ev holds its erased form.
func IsErased(ev *audit.Event, field string) bool {
	v := Value(ev, field)
	switch field {
	case "context.ip", "context.geo", "metadata", "enrichment":
		return len(v) == 0
	}
	return string(v) == Erased
}

// Erase replaces field of ev with its erased form.
func Erase(ev *audit.Event, field string) {
	switch field {
	case "actor.email":
		ev.Actor.Email = Erased
	case "actor.name":
		ev.Actor.Name = Erased
	case "target.name":
		ev.Target.Name = Erased
	case "context.ip":
		ev.Context.IP = netip.Addr{}
	case "context.user_agent":
		ev.Context.UserAgent = Erased
	case "context.session_id":
		ev.Context.SessionID = Erased
	case "context.device_id":
		ev.Context.DeviceID = Erased
	case "context.geo":
		ev.Context.Geo = nil
	case "metadata":
		ev.Metadata = nil
	case "enrichment":
		ev.Enrichment = audit.Enrichment{}
	}
}

// emptyHash is the SHA-256 of an absent value, the most common one.
var emptyHash = sha256.Sum256(nil)

// FieldHash is the SHA-256 of a field's canonical value.
func FieldHash(ev *audit.Event, field string) []byte {
	v := Value(ev, field)
	if len(v) == 0 {
		return emptyHash[:]
	}
	h := sha256.Sum256(v)
	return h[:]
}

// leafHead is the leaf's domain tag; fieldHeads[i] is Fields[i]
// length-prefixed, as Leaf hashes it.
var (
	leafHead   = []byte("vigil-leaf/1")
	fieldHeads = func() [][]byte {
		out := make([][]byte, len(Fields))
		for i, f := range Fields {
			out[i] = appendLP(nil, []byte(f))
		}
		return out
	}()
)

// appendLP appends b with its length as 8 big-endian bytes before it.
func appendLP(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(b)))
	return append(dst, b...)
}

// Leaf returns the leaf hash of ev. erased maps a field to the original
// hash recorded when it was erased; it is used only while the field still
// holds its erased form, so a value edited after erasure fails.
//
// The leaf is SHA-256 over "vigil-leaf/1", the length-prefixed tenant and
// id, the time (8 bytes), then for each of Fields its length-prefixed name
// and the length-prefixed SHA-256 of its value. Every stored event pays
// for it, so the preimage is built in one stack buffer and hashed once,
// and text values are hashed from a stack copy: 11 allocations instead of
// 29 (those left are the JSON of the structured fields). The SHA-256
// blocks themselves are most of what remains.
func Leaf(ev *audit.Event, erased map[string][]byte) []byte {
	var bufArr [2048]byte
	var valArr [256]byte
	buf := append(bufArr[:0], leafHead...)
	buf = appendLP(buf, []byte(ev.Tenant))
	buf = appendLP(buf, []byte(ev.ID))
	buf = binary.BigEndian.AppendUint64(buf, uint64(ev.Time.UnixNano()))
	for i, f := range Fields {
		buf = append(buf, fieldHeads[i]...)
		if orig, ok := erased[f]; ok && IsErased(ev, f) {
			buf = appendLP(buf, orig)
			continue
		}
		v, ok := appendText(valArr[:0], ev, f)
		if !ok {
			v = Value(ev, f)
		}
		h := emptyHash
		if len(v) > 0 {
			h = sha256.Sum256(v)
		}
		buf = appendLP(buf, h[:])
	}
	sum := sha256.Sum256(buf)
	return sum[:]
}

// appendText appends the canonical value of field to dst when the field is
// a text, an address or a time, and says whether it was (false for the
// structured fields, whose JSON Value builds, and for unknown ones). Leaf
// passes a stack buffer, so it allocates nothing for values up to its
// capacity.
func appendText(dst []byte, ev *audit.Event, field string) ([]byte, bool) {
	var s string
	switch field {
	case "action":
		s = ev.Action
	case "outcome":
		s = string(ev.Outcome)
	case "reason":
		s = ev.Reason
	case "actor.id":
		s = ev.Actor.ID
	case "actor.type":
		s = ev.Actor.Type
	case "actor.email":
		s = ev.Actor.Email
	case "actor.name":
		s = ev.Actor.Name
	case "target.type":
		s = ev.Target.Type
	case "target.id":
		s = ev.Target.ID
	case "target.name":
		s = ev.Target.Name
	case "context.ip":
		if !ev.Context.IP.IsValid() {
			return dst, true
		}
		return ev.Context.IP.AppendTo(dst), true
	case "context.user_agent":
		s = ev.Context.UserAgent
	case "context.session_id":
		s = ev.Context.SessionID
	case "context.request_id":
		s = ev.Context.RequestID
	case "context.auth_method":
		s = ev.Context.AuthMethod
	case "context.device_id":
		s = ev.Context.DeviceID
	case "received_at":
		if ev.ReceivedAt.IsZero() {
			return dst, true
		}
		return strconv.AppendInt(dst, ev.ReceivedAt.UnixNano(), 10), true
	default:
		return dst, false
	}
	return append(dst, s...), true
}

// Genesis is h_0 of a (tenant, day) chain: bound to both, so a chain
// cannot be moved to another day or tenant.
func Genesis(tenant, day string) []byte {
	h := sha256.New()
	h.Write([]byte("vigil-chain/1\x00" + tenant + "\x00" + day))
	return h.Sum(nil)
}

// Link returns h_n = SHA-256(h_{n-1} || leaf_n).
func Link(prev, leaf []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(leaf)
	return h.Sum(nil)
}
