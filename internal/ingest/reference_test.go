package ingest

// This file keeps the encoding/json implementation of DecodeEvent that the
// hand-written scanner in scan.go replaced, as the reference the
// differential tests hold the scanner to.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// wireEvent is what a client may send: the audit.Event fields Vigil does not
// compute itself. Strings stand in for typed fields so that a bad value gets
// an error naming its field.
type wireEvent struct {
	ID       string          `json:"id"`
	Tenant   string          `json:"tenant"`
	Time     *string         `json:"time"`
	Action   string          `json:"action"`
	Outcome  string          `json:"outcome"`
	Reason   string          `json:"reason"`
	Actor    audit.Actor     `json:"actor"`
	Target   audit.Target    `json:"target"`
	Context  wireContext     `json:"context"`
	Metadata json.RawMessage `json:"metadata"`
}

type wireContext struct {
	IP         string           `json:"ip"`
	UserAgent  string           `json:"user_agent"`
	SessionID  string           `json:"session_id"`
	RequestID  string           `json:"request_id"`
	AuthMethod string           `json:"auth_method"`
	DeviceID   string           `json:"device_id"`
	Geo        *audit.ClientGeo `json:"geo"`
}

// referenceDecodeEvent is DecodeEvent as it was with encoding/json.
func referenceDecodeEvent(raw []byte) (*audit.Event, error) {
	if len(raw) > audit.MaxEventBytes {
		return nil, &audit.Error{Code: audit.ETOOLARGE, Message: fmt.Sprintf("event is %d bytes; at most %d are allowed", len(raw), audit.MaxEventBytes)}
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, jsonFieldError(err)
	}
	// Anything but white space after the value is trailing data (More
	// alone would let a stray '}' or ']' through).
	if len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, audit.Errorf(audit.EINVALID, "event has trailing data after the object")
	}
	ev := &audit.Event{
		ID: w.ID, Tenant: w.Tenant, Action: w.Action, Outcome: audit.Outcome(w.Outcome), Reason: w.Reason,
		Actor: w.Actor, Target: w.Target,
		Context: audit.Context{
			UserAgent: w.Context.UserAgent, SessionID: w.Context.SessionID, RequestID: w.Context.RequestID,
			AuthMethod: w.Context.AuthMethod, DeviceID: w.Context.DeviceID, Geo: w.Context.Geo,
		},
	}
	if w.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *w.Time)
		if err != nil {
			return nil, audit.FieldErrorf("time", "time %q is not an RFC 3339 timestamp such as 2026-11-25T16:47:24Z", clip(*w.Time))
		}
		if t.IsZero() {
			return nil, zeroTime()
		}
		ev.Time = t
	}
	if w.Context.IP != "" {
		ip, err := netip.ParseAddr(w.Context.IP)
		if err != nil {
			return nil, audit.FieldErrorf("context.ip", "context.ip %q is not an IP address", clip(w.Context.IP))
		}
		ev.Context.IP = ip
	}
	if m := bytes.TrimSpace(w.Metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		if len(m) > audit.MaxMetadataBytes {
			return nil, &audit.Error{Code: audit.ETOOLARGE, Field: "metadata", Message: fmt.Sprintf("metadata is %d bytes; at most %d are allowed", len(m), audit.MaxMetadataBytes)}
		}
		if m[0] != '{' {
			return nil, audit.FieldErrorf("metadata", "metadata must be a JSON object")
		}
		if err := json.Unmarshal(m, &ev.Metadata); err != nil {
			return nil, audit.FieldErrorf("metadata", "metadata is not valid JSON")
		}
	}
	return ev, nil
}

// jsonFieldError turns an encoding/json error into an EINVALID error naming
// the field where possible.
func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return audit.Errorf(audit.EINVALID, "event must be a JSON object")
		}
		return audit.FieldErrorf(field, "%s must be a %s, not a JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return audit.Errorf(audit.EINVALID, "event is not valid JSON at byte %d", se.Offset)
	}
	// encoding/json reports an unknown field only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return audit.FieldErrorf(name, "unknown field %q (custom data belongs in metadata)", clip(name))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return audit.Errorf(audit.EINVALID, "event is truncated")
	}
	return audit.Errorf(audit.EINVALID, "event is not valid: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "struct", "map":
		return "JSON object"
	case "slice", "array":
		return "JSON array"
	case "string":
		return "string"
	case "float64", "float32", "int", "int64", "uint32", "uint64":
		return "number"
	case "bool":
		return "boolean"
	}
	return k
}
