package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// MaxBatch is the most events one request may carry.
const MaxBatch = 10_000

// Item is one decoded event of a request body, or the reason it could not
// be decoded. Index is its 0-based position in the body.
type Item struct {
	Index int
	Event *audit.Event
	Err   error
}

// Format is the shape of an ingest body.
type Format int

// Body formats.
const (
	// FormatJSON is one JSON object or a JSON array of objects.
	FormatJSON Format = iota
	// FormatNDJSON is one JSON object per line.
	FormatNDJSON
)

// Decode splits a request body into events. A body that cannot be split at
// all (not JSON, not an object or array, more than MaxBatch events) is an
// EINVALID *audit.Error; an event that is split out but malformed becomes an
// Item with Err set, so one bad event never sinks its batch.
func Decode(body []byte, f Format) ([]Item, error) {
	if f == FormatNDJSON {
		return decodeNDJSON(body)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, audit.Errorf(audit.EINVALID, "request body is empty")
	}
	switch trimmed[0] {
	case '{':
		if !json.Valid(trimmed) {
			return nil, syntaxError(trimmed, "request body")
		}
		return []Item{decodeOne(0, bytes.TrimRight(trimmed, " \t\r\n"))}, nil
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, audit.Errorf(audit.EINVALID, "request body must be a JSON array of event objects")
			}
			return nil, syntaxError(trimmed, "request body")
		}
		if len(raws) == 0 {
			return nil, audit.Errorf(audit.EINVALID, "request body is an empty array")
		}
		if len(raws) > MaxBatch {
			return nil, audit.Errorf(audit.EINVALID, "request body has %d events; at most %d are allowed", len(raws), MaxBatch)
		}
		items := make([]Item, len(raws))
		for i, raw := range raws {
			items[i] = decodeOne(i, raw)
		}
		return items, nil
	}
	return nil, audit.Errorf(audit.EINVALID, "request body must be a JSON object, a JSON array or NDJSON")
}

func decodeNDJSON(body []byte) ([]Item, error) {
	var items []Item
	line := 0
	// The body is in memory: lines are cut out of it in place (a
	// bufio.Scanner would cost each request a 64 KiB buffer).
	for rest := body; len(rest) > 0; {
		line++
		var raw []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			raw, rest = rest, nil
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		if len(items) == MaxBatch {
			return nil, audit.Errorf(audit.EINVALID, "request body has more than %d events", MaxBatch)
		}
		it := decodeOne(len(items), raw)
		if it.Err != nil && !json.Valid(raw) {
			// Only a failed line pays for locating the syntax error.
			it.Err = syntaxError(raw, fmt.Sprintf("line %d", line))
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, audit.Errorf(audit.EINVALID, "request body has no events")
	}
	return items, nil
}

func decodeOne(idx int, raw []byte) Item {
	ev, err := DecodeEvent(raw)
	return Item{Index: idx, Event: ev, Err: err}
}

// DecodeEvent decodes one event object in the wire form, strictly: unknown
// fields, wrong types, a bad IP or time, or a metadata value that is not an
// object are EINVALID errors naming the field; an event over MaxEventBytes or
// metadata over MaxMetadataBytes is ETOOLARGE. The event is not normalised or
// validated against the catalog; see audit.Event.Normalize and Validate.
func DecodeEvent(raw []byte) (*audit.Event, error) {
	if len(raw) > audit.MaxEventBytes {
		return nil, &audit.Error{Code: audit.ETOOLARGE, Message: fmt.Sprintf("event is %d bytes; at most %d are allowed", len(raw), audit.MaxEventBytes)}
	}
	return decodeEventFast(raw)
}

// finish checks and converts what the scanner left as text: time, IP and
// metadata, in that order.
func finish(ev *audit.Event, w *wireParts) (*audit.Event, error) {
	if w.hasTime {
		t, err := time.Parse(time.RFC3339Nano, w.time)
		if err != nil {
			return nil, audit.FieldErrorf("time", "time %q is not an RFC 3339 timestamp such as 2026-11-25T16:47:24Z", clip(w.time))
		}
		ev.Time = t
	}
	if w.ip != "" {
		ip, err := netip.ParseAddr(w.ip)
		if err != nil {
			return nil, audit.FieldErrorf("context.ip", "context.ip %q is not an IP address", clip(w.ip))
		}
		ev.Context.IP = ip
	}
	if m := bytes.TrimSpace(w.metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		if len(m) > audit.MaxMetadataBytes {
			return nil, &audit.Error{Code: audit.ETOOLARGE, Field: "metadata", Message: fmt.Sprintf("metadata is %d bytes; at most %d are allowed", len(m), audit.MaxMetadataBytes)}
		}
		if m[0] != '{' {
			return nil, audit.FieldErrorf("metadata", "metadata must be a JSON object")
		}
		md, ok := decodeMetadata(m)
		if !ok {
			return nil, audit.FieldErrorf("metadata", "metadata is not valid JSON")
		}
		ev.Metadata = md
	}
	return ev, nil
}

// syntaxError reports where a body stops being valid JSON.
func syntaxError(b []byte, where string) error {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(b, se.Offset)
		return audit.Errorf(audit.EINVALID, "%s is not valid JSON: %s at line %d, column %d", where, strings.TrimPrefix(se.Error(), "json: "), line, col)
	}
	return audit.Errorf(audit.EINVALID, "%s is not valid JSON", where)
}

func position(b []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off-1 && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
