package ingest

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
	// FormatNDJSON is one JSON object per line; a line that is not valid
	// JSON is that event's error.
	FormatNDJSON
	// FormatSniff is a body sent without a JSON content type: a JSON array
	// when it starts with '[', otherwise one or more JSON objects separated
	// by whitespace (so one object, or NDJSON).
	FormatSniff
)

// Decode is DecodeReader on a body held in memory.
func Decode(body []byte, f Format) ([]Item, error) {
	return DecodeReader(bytes.NewReader(body), f, nil)
}

// DecodeReader reads a request body and splits it into events, streaming:
// the body is never held whole, and it stops reading at the first event
// over MaxBatch, so the cost of a body is bounded by the events it may
// carry, not by its length.
//
// A body that cannot be split at all (not JSON, not an object or array,
// a syntax error, more than MaxBatch events) is an EINVALID *audit.Error;
// an event that is split out but malformed becomes an Item with Err set, so
// one bad event never sinks its batch. An error of r itself is returned
// wrapped, for the caller to map (a size cap, a memory budget).
//
// admit, when not nil, is called before each event is decoded (to charge
// its decoded form to a memory budget); its error stops decoding and is
// returned as it is.
func DecodeReader(r io.Reader, f Format, admit func() error) ([]Item, error) {
	s := newBodyReader(r)
	defer s.release()
	s.admit = admit
	if f == FormatNDJSON {
		return s.ndjson()
	}
	c, ok := s.peek()
	if !ok {
		if err := s.readError(); err != nil {
			return nil, err
		}
		return nil, audit.Errorf(audit.EINVALID, "request body is empty")
	}
	switch c {
	case '{':
		return s.objects(f == FormatSniff)
	case '[':
		return s.array()
	}
	return nil, audit.Errorf(audit.EINVALID, "request body must be a JSON object, a JSON array or NDJSON")
}

func decodeOne(idx int, raw []byte) Item {
	ev, err := DecodeEvent(raw)
	return Item{Index: idx, Event: ev, Err: err}
}

// DecodeEvent decodes one event object in the wire form, strictly: unknown
// fields, wrong types, text that is not UTF-8, a bad IP or time, or a
// metadata value that is not an object are EINVALID errors naming each
// field (every problem, up to 20); an event over MaxEventBytes or metadata
// over MaxMetadataBytes is ETOOLARGE. When the event is valid JSON but has
// such problems, the partly decoded event is returned with the error, so a
// caller can add validation's problems to them. The event is not
// normalised or validated against the catalog; see audit.Event.Normalize
// and Validate.
func DecodeEvent(raw []byte) (*audit.Event, error) {
	if len(raw) > audit.MaxEventBytes {
		return nil, &audit.Error{Code: audit.ETOOLARGE, Message: fmt.Sprintf("event is %d bytes; at most %d are allowed", len(raw), audit.MaxEventBytes)}
	}
	return decodeEventFast(raw)
}

// finish checks and converts what the scanner left as text (time, IP and
// metadata, in that order) and reports every problem: those the scanner
// saved first. With problems, the partly decoded event comes back with
// the error, so validation can add its own.
func finish(ev *audit.Event, w *wireParts, problems []audit.Problem, dropped int) (*audit.Event, error) {
	add := func(field, format string, args ...any) {
		if len(problems) == maxProblems {
			dropped++
			return
		}
		problems = append(problems, audit.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if w.hasTime {
		t, err := time.Parse(time.RFC3339Nano, w.time)
		switch {
		case err != nil:
			add("time", "time %q is not an RFC 3339 timestamp such as 2026-11-25T16:47:24Z", clip(w.time))
		case t.IsZero():
			// Zero means "absent" to Normalize, which would put the receive
			// time in its place; refuse it as any other pre-2000 time.
			add("time", "%s", audit.ErrorMessage(zeroTime()))
		default:
			ev.Time = t
		}
	}
	if w.ip != "" {
		if ip, err := netip.ParseAddr(w.ip); err != nil {
			add("context.ip", "context.ip %q is not an IP address", clip(w.ip))
		} else {
			ev.Context.IP = ip
		}
	}
	if m := bytes.TrimSpace(w.metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		switch {
		case len(m) > audit.MaxMetadataBytes:
			msg := fmt.Sprintf("metadata is %d bytes; at most %d are allowed", len(m), audit.MaxMetadataBytes)
			if len(problems) == 0 {
				return nil, &audit.Error{Code: audit.ETOOLARGE, Field: "metadata", Message: msg}
			}
			add("metadata", "%s", msg)
		case m[0] != '{':
			add("metadata", "metadata must be a JSON object")
		default:
			md, p := decodeMetadata(m)
			if p != nil {
				add(p.Field, "%s", p.Message)
			} else {
				ev.Metadata = md
			}
		}
	}
	if len(problems) == 0 {
		return ev, nil
	}
	if dropped > 0 {
		problems = append(problems, audit.Problem{Message: fmt.Sprintf("and %d more problems", dropped)})
	}
	return ev, audit.Invalid(problems)
}

func zeroTime() error {
	return audit.FieldErrorf("time", "time %s is before the year 2000", time.Time{}.Format(time.RFC3339))
}

func jsonValid(b []byte) bool { return json.Valid(b) }

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
