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
	switch field {
	case "action":
		return []byte(ev.Action)
	case "outcome":
		return []byte(ev.Outcome)
	case "reason":
		return []byte(ev.Reason)
	case "actor.id":
		return []byte(ev.Actor.ID)
	case "actor.type":
		return []byte(ev.Actor.Type)
	case "actor.email":
		return []byte(ev.Actor.Email)
	case "actor.name":
		return []byte(ev.Actor.Name)
	case "target.type":
		return []byte(ev.Target.Type)
	case "target.id":
		return []byte(ev.Target.ID)
	case "target.name":
		return []byte(ev.Target.Name)
	case "context.ip":
		if !ev.Context.IP.IsValid() {
			return []byte{}
		}
		return []byte(ev.Context.IP.String())
	case "context.user_agent":
		return []byte(ev.Context.UserAgent)
	case "context.session_id":
		return []byte(ev.Context.SessionID)
	case "context.request_id":
		return []byte(ev.Context.RequestID)
	case "context.auth_method":
		return []byte(ev.Context.AuthMethod)
	case "context.device_id":
		return []byte(ev.Context.DeviceID)
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
	case "received_at":
		if ev.ReceivedAt.IsZero() {
			return []byte{}
		}
		return strconv.AppendInt(nil, ev.ReceivedAt.UnixNano(), 10)
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

// Leaf returns the leaf hash of ev. erased maps a field to the original
// hash recorded when it was erased; it is used only while the field still
// holds its erased form, so a value edited after erasure fails.
func Leaf(ev *audit.Event, erased map[string][]byte) []byte {
	h := sha256.New()
	h.Write([]byte("vigil-leaf/1"))
	lp := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	lp([]byte(ev.Tenant))
	lp([]byte(ev.ID))
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ev.Time.UnixNano()))
	h.Write(ts[:])
	for _, f := range Fields {
		lp([]byte(f))
		if orig, ok := erased[f]; ok && IsErased(ev, f) {
			lp(orig)
			continue
		}
		lp(FieldHash(ev, f))
	}
	return h.Sum(nil)
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
