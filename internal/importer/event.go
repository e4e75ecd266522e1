package importer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/audit"
)

// Decoder turns one vendor record into one event. The event is not
// normalised or validated against the catalog (ingestion does both); a
// record the decoder cannot use is an EINVALID *audit.Error naming every
// field at fault in the vendor's own field names.
type Decoder func(raw []byte) (*audit.Event, error)

// Problems collects what is wrong with one record, so every problem is
// reported at once.
type Problems []audit.Problem

// Add records a problem with a field.
func (ps *Problems) Add(field, format string, args ...any) {
	*ps = append(*ps, audit.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err is nil without problems, else an EINVALID *audit.Error naming them all.
func (ps Problems) Err() error { return audit.Invalid(ps) }

// Unmarshal decodes a record into v (vendor records carry many fields
// Vigil does not read, so unknown fields are allowed; keys match
// case-insensitively). A syntax error or a field of the wrong JSON kind
// is an EINVALID error naming the field.
func Unmarshal(raw []byte, v any) error {
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return audit.Errorf(audit.EINVALID, "the record must be a JSON object, not a JSON %s", te.Value)
		}
		return audit.FieldErrorf(field, "%s must not be a JSON %s", field, te.Value)
	case errors.As(err, &se):
		return audit.Errorf(audit.EINVALID, "the record is not valid JSON at byte %d", se.Offset)
	}
	return audit.Errorf(audit.EINVALID, "the record is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// ID derives an event id from a vendor's event id, so importing the same
// records twice stores each once: "<prefix>:<vendorID>" when that is a
// valid event id, else "<prefix>:<hash of vendorID>". Without a vendor id,
// the hash is of the raw record.
func ID(prefix, vendorID string, raw []byte) string {
	if vendorID != "" {
		if id := prefix + ":" + vendorID; audit.ValidEventID(id) {
			return id
		}
		raw = []byte(vendorID)
	}
	sum := sha256.Sum256(raw)
	return prefix + ":h" + hex.EncodeToString(sum[:16])
}

// Action names a custom action in a vendor's namespace from the vendor's
// own event name: "okta" and "user.session.clear" give
// okta.user.session.clear. Characters an action may not hold become '_',
// CamelCase becomes snake_case, and a segment that does not start with a
// letter is prefixed with 'x'.
func Action(namespace string, parts ...string) string {
	var b strings.Builder
	b.WriteString(namespace)
	for _, p := range parts {
		for seg := range strings.SplitSeq(p, ".") {
			seg = snake(seg)
			if seg == "" {
				continue
			}
			b.WriteByte('.')
			if seg[0] < 'a' || seg[0] > 'z' {
				b.WriteByte('x')
			}
			b.WriteString(seg)
		}
	}
	s := b.String()
	if s == namespace {
		s += ".unknown"
	}
	if len(s) > audit.MaxActionBytes {
		s = strings.TrimRight(s[:audit.MaxActionBytes], "._")
	}
	return s
}

// snake lowercases s, turning an upper-case letter after a lower-case one
// or a digit into "_x", and every other disallowed byte into '_'.
func snake(s string) string {
	var b strings.Builder
	prevLower := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteByte(c + 'a' - 'A')
			prevLower = false
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteByte(c)
			prevLower = true
		default:
			b.WriteByte('_')
			prevLower = false
		}
	}
	return strings.Trim(b.String(), "_")
}

// Time parses a vendor timestamp: RFC 3339, the same with a space for the
// 'T' and no zone (taken as UTC, as some log pipelines write it), or a
// number of milliseconds since 1970.
func Time(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 && ms <= maxUnixMilli {
		return time.UnixMilli(ms).UTC(), true
	}
	return time.Time{}, false
}

// maxUnixMilli is the last millisecond of year 9999: a larger number is no
// timestamp (and an event time past it cannot be encoded as RFC 3339).
const maxUnixMilli = 253402300799999

// Flex is a JSON value that is a string or a number, kept as text (vendor
// timestamps and ids come as either).
type Flex string

// UnmarshalJSON implements json.Unmarshaler.
func (f *Flex) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = Flex(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		if string(b) == "null" {
			return nil
		}
		return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeFor[string]()}
	}
	*f = Flex(n.String())
	return nil
}

// IP parses an address, ignoring what is not one (CloudTrail writes
// "AWS Internal" or a service name where a call came from inside AWS).
func IP(s string) netip.Addr {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

// Coordinates returns lat and lon when both are given and lie on the
// globe, and nil, nil otherwise. A vendor's coordinates outside it are
// dropped, not passed on to have the whole record refused.
func Coordinates(lat, lon *float64) (*float64, *float64) {
	if lat == nil || lon == nil || !(*lat >= -90 && *lat <= 90) || !(*lon >= -180 && *lon <= 180) {
		return nil, nil
	}
	return lat, lon
}

// Text cuts s to at most max bytes on a rune boundary and replaces
// control characters with spaces, so a vendor value always fits a field.
func Text(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// MaxRawBytes bounds the copy of the raw record kept in metadata.raw,
// measured as it is stored (a JSON string, escapes included), so an
// imported event's metadata stays within audit.MaxMetadataBytes. The
// record is kept as JSON text, not as an object whose keys would count
// against audit.MaxMetadataKeys.
const MaxRawBytes = 4 << 10

// Finish completes a decoded event the same way for every vendor:
//   - text fields are cut to the catalog's limits;
//   - a catalog action whose required fields the record did not carry
//     becomes the vendor's custom action (custom), with metadata.unmapped
//     naming the missing fields, so the event is kept rather than refused
//     and detection never reads a half-filled login;
//   - metadata.import records the format, and metadata.raw holds the
//     record itself, cut at MaxRawBytes (metadata.raw_truncated then true).
func Finish(ev *audit.Event, format, custom string, raw []byte) {
	ev.Actor.ID = Text(ev.Actor.ID, audit.MaxFieldBytes)
	ev.Actor.Email = Text(ev.Actor.Email, audit.MaxFieldBytes)
	ev.Actor.Name = Text(ev.Actor.Name, audit.MaxFieldBytes)
	ev.Target.ID = Text(ev.Target.ID, audit.MaxFieldBytes)
	ev.Target.Name = Text(ev.Target.Name, audit.MaxFieldBytes)
	ev.Target.Type = Text(ev.Target.Type, audit.MaxFieldBytes)
	ev.Reason = Text(ev.Reason, audit.MaxFieldBytes)
	ev.Context.UserAgent = Text(ev.Context.UserAgent, audit.MaxUserAgent)
	ev.Context.SessionID = Text(ev.Context.SessionID, audit.MaxFieldBytes)
	ev.Context.RequestID = Text(ev.Context.RequestID, audit.MaxFieldBytes)
	ev.Context.DeviceID = Text(ev.Context.DeviceID, audit.MaxFieldBytes)
	if ev.Metadata == nil {
		ev.Metadata = map[string]any{}
	}
	if missing := Missing(ev); len(missing) > 0 {
		ev.Metadata["unmapped"] = fmt.Sprintf("%s lacks %s", ev.Action, strings.Join(missing, ", "))
		ev.Action = custom
	}
	ev.Metadata["import"] = map[string]any{"format": format}
	r, cut := rawText(raw)
	if cut {
		ev.Metadata["raw_truncated"] = true
	}
	ev.Metadata["raw"] = r
}

// rawText returns as much of raw as fits MaxRawBytes once encoded as a
// JSON string, cut on a rune boundary, and whether it was cut.
func rawText(raw []byte) (string, bool) {
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	n := 2 // the quotes
	for i, r := range s {
		w := utf8.RuneLen(r)
		switch {
		case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
			w = 2
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029:
			w = 6
		}
		if n+w > MaxRawBytes {
			return s[:i], true
		}
		n += w
	}
	return s, false
}

// Missing lists the fields a catalog action requires that ev lacks, or
// has with a value the catalog does not allow.
func Missing(ev *audit.Event) []string {
	var out []string
	for _, path := range audit.RequiredFields(ev.Action) {
		v := field(ev, path)
		if v == "" {
			out = append(out, path)
			continue
		}
		if allowed := audit.AllowedValues(ev.Action, path); allowed != nil && !contains(allowed, v) {
			out = append(out, path)
		}
	}
	return out
}

func field(ev *audit.Event, path string) string {
	switch path {
	case "actor.id":
		return ev.Actor.ID
	case "target.id":
		return ev.Target.ID
	case "reason":
		return ev.Reason
	case "context.ip":
		if ev.Context.IP.IsValid() {
			return ev.Context.IP.String()
		}
		return ""
	case "context.user_agent":
		return ev.Context.UserAgent
	case "context.auth_method":
		return ev.Context.AuthMethod
	case "context.session_id":
		return ev.Context.SessionID
	}
	if key, ok := strings.CutPrefix(path, "metadata."); ok {
		s, _ := ev.Metadata[key].(string)
		return s
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
