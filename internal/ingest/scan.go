package ingest

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/audit"
)

// This file is a hand-written decoder for the fixed wire schema of one event.
// It replaces a json.Decoder with DisallowUnknownFields decoding into a
// struct, and reproduces that decoder's observable behaviour exactly
// (reference_test.go keeps the encoding/json version and a differential fuzz
// target holds the two together):
//
//   - the whole first JSON value is checked for syntax before any other
//     error counts, so a syntax error anywhere beats a type error earlier;
//   - otherwise the first type or unknown-field error in document order wins;
//   - keys match field names exactly or case-insensitively by Unicode simple
//     folding (so "ACTOR" and "ſession_id" match), after unescaping;
//   - duplicate keys: the last value wins, and objects merge into the
//     struct decoded so far;
//   - null leaves a string or struct field unchanged and clears a pointer
//     (time, context.geo, latitude, longitude); metadata null is "no
//     metadata";
//   - strings are unescaped like encoding/json: \uXXXX with surrogate pairs;
//     but where encoding/json turns invalid UTF-8 or an unpaired surrogate
//     into U+FFFD, the scanner refuses it, saving an error that names the
//     field ("actor.id is not valid UTF-8") in document order like a type
//     error (the one deliberate difference from the reference);
//   - after the object, only whitespace, '}' or ']' may follow (that is what
//     json.Decoder.More checks).

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// eventScanner decodes one event. It is used once per event and lives on
// the stack of DecodeEvent.
type eventScanner struct {
	data []byte
	pos  int // next byte to read; on a syntax failure, the offending byte
	// saved are the type, unknown-field and text problems in document
	// order (at most maxProblems), reported only if the whole value turns
	// out to be valid JSON. encoding/json kept only the first (its
	// savedError); the first here is always that one.
	saved   []audit.Problem
	dropped int      // problems beyond maxProblems
	buf     [64]byte // scratch for unescaping short strings
}

// Field names, in the order of the switch cases that use them.
var (
	eventFields   = [...]string{"id", "tenant", "time", "action", "outcome", "reason", "actor", "target", "context", "metadata"}
	actorFields   = [...]string{"id", "type", "email", "name"}
	targetFields  = [...]string{"type", "id", "name"}
	contextFields = [...]string{"ip", "user_agent", "session_id", "request_id", "auth_method", "device_id", "geo"}
	geoFields     = [...]string{"country", "region", "city", "latitude", "longitude"}
)

// wireParts are the fields DecodeEvent still has to check after scanning.
type wireParts struct {
	time     string
	hasTime  bool
	ip       string
	metadata []byte // raw JSON of the last metadata value, nil if absent
}

// decodeEventFast is DecodeEvent after the size check.
func decodeEventFast(raw []byte) (*audit.Event, error) {
	s := eventScanner{data: raw}
	ev := &audit.Event{}
	var w wireParts
	s.skipSpace()
	if s.pos >= len(raw) {
		return nil, audit.Errorf(audit.EINVALID, "event is truncated")
	}
	switch raw[s.pos] {
	case '{':
		if !s.event(ev, &w) {
			return nil, s.syntaxError()
		}
	case 'n':
		// Decoding null into a struct is a no-op in encoding/json.
		if !s.literal("null") {
			return nil, s.syntaxError()
		}
	default:
		if !s.skipValue(1) {
			return nil, s.syntaxError()
		}
		if s.saved == nil {
			return nil, audit.Errorf(audit.EINVALID, "event must be a JSON object")
		}
	}
	// Trailing data is refused unless a type or unknown-field problem came
	// first (encoding/json reported those from Decode, before looking
	// further); text problems alone do not hide it.
	if s.dropped == 0 && onlyTextProblems(s.saved) {
		s.skipSpace()
		if s.pos < len(raw) {
			return nil, audit.Errorf(audit.EINVALID, "event has trailing data after the object")
		}
	}
	return finish(ev, &w, s.saved, s.dropped)
}

// syntaxError reports where the event stops being valid JSON, in the words
// json.Decoder used: the 1-based offset of the offending byte, or
// "truncated" when the input ends inside the value.
func (s *eventScanner) syntaxError() error {
	if s.pos >= len(s.data) {
		return audit.Errorf(audit.EINVALID, "event is truncated")
	}
	return audit.Errorf(audit.EINVALID, "event is not valid JSON at byte %d", s.pos+1)
}

// maxProblems bounds the problems reported for one event, so an event of
// 8,000 unknown keys does not get 8,000 messages.
const maxProblems = 20

// save records a problem found while scanning.
func (s *eventScanner) save(field, format string, args ...any) {
	if len(s.saved) == maxProblems {
		s.dropped++
		return
	}
	s.saved = append(s.saved, audit.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// typeError saves the error for a value of the wrong JSON kind.
func (s *eventScanner) typeError(field, want string, got string) {
	s.save(field, "%s must be a %s, not a JSON %s", field, want, got)
}

// unknownField saves the error for a key that matches no field.
func (s *eventScanner) unknownField(key []byte) {
	// The message json.Decoder gave was `json: unknown field "key"` (key
	// quoted with %q), and the field name was that with the quotes trimmed.
	name := strings.Trim(strconv.Quote(string(key)), `"`)
	s.save(name, "unknown field %q (custom data belongs in metadata)", clip(name))
}

// kind names the JSON kind of the value at s.pos, or "" if no value can
// start there.
func (s *eventScanner) kind() string {
	switch c := s.data[s.pos]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return ""
}

// wrongKind skips a value that is not of the wanted kind and saves the
// type error for it.
func (s *eventScanner) wrongKind(field, want string, depth int) bool {
	k := s.kind()
	if k == "" {
		return false
	}
	if !s.skipValue(depth) {
		return false
	}
	s.typeError(field, want, k)
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *eventScanner) skipSpace() {
	for s.pos < len(s.data) && isSpace(s.data[s.pos]) {
		s.pos++
	}
}

// objectStart consumes '{' and reports whether the object has members; if
// it has, s.pos is at the first key's quote.
func (s *eventScanner) objectStart(depth int) (members, ok bool) {
	if depth > maxNestingDepth {
		return false, false
	}
	s.pos++
	s.skipSpace()
	if s.pos >= len(s.data) {
		return false, false
	}
	switch s.data[s.pos] {
	case '}':
		s.pos++
		return false, true
	case '"':
		return true, true
	}
	return false, false
}

// key reads a member key and the ':' after it, leaving s.pos at the value.
// The key is returned raw (still escaped) with needs reporting whether it
// must be unescaped.
func (s *eventScanner) key() (key []byte, needs bool, ok bool) {
	key, needs, ok = s.str()
	if !ok {
		return nil, false, false
	}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return nil, false, false
	}
	s.pos++
	s.skipSpace()
	if s.pos >= len(s.data) {
		return nil, false, false
	}
	return key, needs, true
}

// objectNext consumes ',' (more members follow; s.pos is at the next key)
// or '}' (the object is done).
func (s *eventScanner) objectNext() (more, ok bool) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return false, false
	}
	switch s.data[s.pos] {
	case '}':
		s.pos++
		return false, true
	case ',':
		s.pos++
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return false, false
		}
		return true, true
	}
	return false, false
}

// match returns the index of the field a key names, or -1.
func (s *eventScanner) match(raw []byte, needs bool, names []string) (int, []byte) {
	key := raw
	if needs {
		key, _ = unquote(s.buf[:0], raw)
	}
	for i, n := range names {
		if string(key) == n {
			return i, key
		}
	}
	for i, n := range names {
		if foldEqual(key, n) {
			return i, key
		}
	}
	return -1, key
}

// foldEqual reports whether key equals name, a lower-case ASCII field name,
// under encoding/json's case folding (Unicode simple folding). The only
// non-ASCII runes that fold onto ASCII letters are U+017F (ſ, onto s) and
// U+212A (Kelvin sign, onto k).
func foldEqual(key []byte, name string) bool {
	j := 0
	for i := 0; i < len(key); {
		if j >= len(name) {
			return false
		}
		c := key[i]
		if c < utf8.RuneSelf {
			if upper(c) != upper(name[j]) {
				return false
			}
			i++
			j++
			continue
		}
		r, size := utf8.DecodeRune(key[i:])
		var f byte
		switch r {
		case 0x017F:
			f = 'S'
		case 0x212A:
			f = 'K'
		default:
			return false
		}
		if upper(name[j]) != f {
			return false
		}
		i += size
		j++
	}
	return j == len(name)
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// event decodes the top-level object.
func (s *eventScanner) event(ev *audit.Event, w *wireParts) bool {
	more, ok := s.objectStart(1)
	if !ok {
		return false
	}
	for more {
		raw, needs, ok := s.key()
		if !ok {
			return false
		}
		i, key := s.match(raw, needs, eventFields[:])
		switch i {
		case 0:
			ok = s.stringField(&ev.ID, "id", 2)
		case 1:
			ok = s.stringField(&ev.Tenant, "tenant", 2)
		case 2:
			switch s.data[s.pos] {
			case 'n':
				ok = s.literal("null")
				w.hasTime, w.time = false, ""
			case '"':
				var v string
				v, ok = s.stringValue("time")
				w.hasTime, w.time = true, v
			default:
				ok = s.wrongKind("time", "string", 2)
			}
		case 3:
			ok = s.stringField(&ev.Action, "action", 2)
		case 4:
			var v = string(ev.Outcome)
			ok = s.stringField(&v, "outcome", 2)
			ev.Outcome = audit.Outcome(v)
		case 5:
			ok = s.stringField(&ev.Reason, "reason", 2)
		case 6:
			ok = s.actor(&ev.Actor)
		case 7:
			ok = s.target(&ev.Target)
		case 8:
			ok = s.context(&ev.Context, w)
		case 9:
			start := s.pos
			if ok = s.skipValue(2); ok {
				w.metadata = s.data[start:s.pos]
			}
		default:
			s.unknownField(key)
			ok = s.skipValue(2)
		}
		if !ok {
			return false
		}
		if more, ok = s.objectNext(); !ok {
			return false
		}
	}
	return true
}

// Error paths of the string fields of actor and target, in the order of
// actorFields and targetFields.
var (
	actorPaths  = [...]string{"actor.id", "actor.type", "actor.email", "actor.name"}
	targetPaths = [...]string{"target.type", "target.id", "target.name"}
)

func (s *eventScanner) actor(a *audit.Actor) bool {
	return s.stringObject("actor", actorFields[:], actorPaths[:], [4]*string{&a.ID, &a.Type, &a.Email, &a.Name})
}

func (s *eventScanner) target(t *audit.Target) bool {
	return s.stringObject("target", targetFields[:], targetPaths[:], [4]*string{&t.Type, &t.ID, &t.Name, nil})
}

// stringObject scans an object (or null) of the event's top level whose
// known fields are all strings: names[i] fills dst[i], and paths[i] names it
// in errors.
func (s *eventScanner) stringObject(name string, names, paths []string, dst [4]*string) bool {
	switch s.data[s.pos] {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		return s.wrongKind(name, "JSON object", 2)
	}
	more, ok := s.objectStart(2)
	if !ok {
		return false
	}
	for more {
		raw, needs, ok := s.key()
		if !ok {
			return false
		}
		i, key := s.match(raw, needs, names)
		if i >= 0 && i < len(names) {
			ok = s.stringField(dst[i], paths[i], 3)
		} else {
			s.unknownField(key)
			ok = s.skipValue(3)
		}
		if !ok {
			return false
		}
		if more, ok = s.objectNext(); !ok {
			return false
		}
	}
	return true
}

func (s *eventScanner) context(c *audit.Context, w *wireParts) bool {
	switch s.data[s.pos] {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		return s.wrongKind("context", "JSON object", 2)
	}
	more, ok := s.objectStart(2)
	if !ok {
		return false
	}
	for more {
		raw, needs, ok := s.key()
		if !ok {
			return false
		}
		i, key := s.match(raw, needs, contextFields[:])
		switch i {
		case 0:
			ok = s.stringField(&w.ip, "context.ip", 3)
		case 1:
			ok = s.stringField(&c.UserAgent, "context.user_agent", 3)
		case 2:
			ok = s.stringField(&c.SessionID, "context.session_id", 3)
		case 3:
			ok = s.stringField(&c.RequestID, "context.request_id", 3)
		case 4:
			ok = s.stringField(&c.AuthMethod, "context.auth_method", 3)
		case 5:
			ok = s.stringField(&c.DeviceID, "context.device_id", 3)
		case 6:
			ok = s.geo(&c.Geo)
		default:
			s.unknownField(key)
			ok = s.skipValue(3)
		}
		if !ok {
			return false
		}
		if more, ok = s.objectNext(); !ok {
			return false
		}
	}
	return true
}

func (s *eventScanner) geo(gp **audit.ClientGeo) bool {
	switch s.data[s.pos] {
	case 'n':
		*gp = nil
		return s.literal("null")
	case '{':
	default:
		return s.wrongKind("context.geo", "JSON object", 3)
	}
	more, ok := s.objectStart(3)
	if !ok {
		return false
	}
	if *gp == nil {
		*gp = &audit.ClientGeo{}
	}
	g := *gp
	for more {
		raw, needs, ok := s.key()
		if !ok {
			return false
		}
		i, key := s.match(raw, needs, geoFields[:])
		switch i {
		case 0:
			ok = s.stringField(&g.Country, "context.geo.country", 4)
		case 1:
			ok = s.stringField(&g.Region, "context.geo.region", 4)
		case 2:
			ok = s.stringField(&g.City, "context.geo.city", 4)
		case 3:
			ok = s.floatField(&g.Latitude, "context.geo.latitude", 4)
		case 4:
			ok = s.floatField(&g.Longitude, "context.geo.longitude", 4)
		default:
			s.unknownField(key)
			ok = s.skipValue(4)
		}
		if !ok {
			return false
		}
		if more, ok = s.objectNext(); !ok {
			return false
		}
	}
	return true
}

// stringField decodes a string member; null leaves *dst unchanged.
func (s *eventScanner) stringField(dst *string, field string, depth int) bool {
	switch s.data[s.pos] {
	case '"':
		v, ok := s.stringValue(field)
		if ok {
			*dst = v
		}
		return ok
	case 'n':
		return s.literal("null")
	}
	return s.wrongKind(field, "string", depth)
}

// floatField decodes a number member into a pointer; null clears it.
func (s *eventScanner) floatField(dst **float64, field string, depth int) bool {
	switch c := s.data[s.pos]; {
	case c == 'n':
		*dst = nil
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.pos
		if !s.number() {
			return false
		}
		text := s.data[start:s.pos]
		f, err := strconv.ParseFloat(string(text), 64)
		if err != nil {
			s.typeError(field, "number", "number "+string(text))
			return true
		}
		if *dst == nil {
			*dst = new(float64)
		}
		**dst = f
		return true
	}
	return s.wrongKind(field, "number", depth)
}

// stringValue reads a string value and returns it unescaped; text that is
// not valid UTF-8 saves an error naming field.
func (s *eventScanner) stringValue(field string) (string, bool) {
	raw, needs, ok := s.str()
	if !ok {
		return "", false
	}
	if !needs {
		return string(raw), true
	}
	v, valid := unquote(s.buf[:0], raw)
	if !valid {
		s.save(field, "%s is not valid UTF-8", field)
	}
	return string(v), true
}

// str reads a JSON string starting at its opening quote and returns its raw
// contents. needs reports whether the contents hold an escape or a
// non-ASCII byte and so must go through unquote.
func (s *eventScanner) str() (raw []byte, needs bool, ok bool) {
	data := s.data
	start := s.pos + 1
	i := start
	for i < len(data) {
		c := data[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.pos = i + 1
			return data[start:i], needs, true
		case c == '\\':
			needs = true
			i++
			if i >= len(data) {
				s.pos = i
				return nil, false, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(data) || !isHex(data[i]) {
						s.pos = i
						return nil, false, false
					}
					i++
				}
			default:
				s.pos = i
				return nil, false, false
			}
		case c < ' ':
			s.pos = i
			return nil, false, false
		default: // non-ASCII
			needs = true
			i++
		}
	}
	s.pos = i
	return nil, false, false
}

// plain marks the bytes a string can hold as they are: printable ASCII
// other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// literal consumes true, false or null, the first byte of which is at s.pos.
func (s *eventScanner) literal(word string) bool {
	for k := 1; k < len(word); k++ {
		i := s.pos + k
		if i >= len(s.data) || s.data[i] != word[k] {
			s.pos = i
			return false
		}
	}
	s.pos += len(word)
	return true
}

// number consumes a JSON number starting at s.pos.
func (s *eventScanner) number() bool {
	data := s.data
	i := s.pos
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		s.pos = i
		return false
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i++
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		s.pos = i
		return false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			s.pos = i
			return false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			s.pos = i
			return false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	s.pos = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipValue checks and skips any JSON value starting at s.pos; depth is the
// nesting level a container starting there would have.
func (s *eventScanner) skipValue(depth int) bool {
	if s.pos >= len(s.data) {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '{':
		more, ok := s.objectStart(depth)
		if !ok {
			return false
		}
		for more {
			if _, _, ok := s.key(); !ok {
				return false
			}
			if !s.skipValue(depth + 1) {
				return false
			}
			if more, ok = s.objectNext(); !ok {
				return false
			}
		}
		return true
	case c == '[':
		if depth > maxNestingDepth {
			return false
		}
		s.pos++
		s.skipSpace()
		if s.pos >= len(s.data) {
			return false
		}
		if s.data[s.pos] == ']' {
			s.pos++
			return true
		}
		for {
			if !s.skipValue(depth + 1) {
				return false
			}
			s.skipSpace()
			if s.pos >= len(s.data) {
				return false
			}
			switch s.data[s.pos] {
			case ']':
				s.pos++
				return true
			case ',':
				s.pos++
				s.skipSpace()
			default:
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || isDigit(c):
		return s.number()
	}
	return false
}

// unquote appends the unescaped contents of a JSON string (without its
// quotes, already checked by str) to b, as encoding/json unescapes them:
// invalid UTF-8 and unpaired surrogates become U+FFFD, and valid is false
// when there were any.
func unquote(b, s []byte) (_ []byte, valid bool) {
	valid = true
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					rr1 := rune(-1)
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						rr1 = hex4(s[r+2:])
					}
					if dec := utf16.DecodeRune(rr, rr1); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec)
						r += 6
						continue
					}
					rr = utf8.RuneError
					valid = false
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			if rr == utf8.RuneError && size == 1 {
				valid = false
			}
			b = utf8.AppendRune(b, rr)
			r += size
		}
	}
	return b, valid
}

// hex4 decodes four hex digits (already checked by str).
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// decodeMetadata decodes a metadata object the way json.Unmarshal into a
// map[string]any does: numbers become float64, arrays []any, objects
// map[string]any, and a duplicate key keeps its last value. m must be an
// object the scanner has already checked. The problem is a number that
// does not fit a float64 (which json.Unmarshal rejects) or a key or string
// that is not valid UTF-8.
func decodeMetadata(m []byte) (map[string]any, *audit.Problem) {
	s := eventScanner{data: m}
	v, ok := s.anyValue()
	if !ok {
		return nil, &audit.Problem{Field: "metadata", Message: "metadata is not valid JSON"}
	}
	if len(s.saved) > 0 {
		return nil, &s.saved[0]
	}
	obj, _ := v.(map[string]any)
	return obj, nil
}

// anyValue decodes the checked JSON value at s.pos into the types
// json.Unmarshal uses for an empty interface.
func (s *eventScanner) anyValue() (any, bool) {
	s.skipSpace()
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.stringValue("metadata")
	case c == '{':
		obj := make(map[string]any)
		more, _ := s.objectStart(0)
		for more {
			raw, needs, _ := s.key()
			var k string
			if needs {
				kb, valid := unquote(s.buf[:0], raw)
				if !valid {
					s.save("metadata", "metadata is not valid UTF-8")
				}
				k = string(kb)
			} else {
				k = string(raw)
			}
			v, ok := s.anyValue()
			if !ok {
				return nil, false
			}
			obj[k] = v
			more, _ = s.objectNext()
		}
		return obj, true
	case c == '[':
		arr := make([]any, 0)
		s.pos++
		s.skipSpace()
		if s.data[s.pos] == ']' {
			s.pos++
			return arr, true
		}
		for {
			v, ok := s.anyValue()
			if !ok {
				return nil, false
			}
			arr = append(arr, v)
			s.skipSpace()
			c := s.data[s.pos]
			s.pos++
			if c == ']' {
				return arr, true
			}
		}
	case c == 't':
		s.pos += len("true")
		return true, true
	case c == 'f':
		s.pos += len("false")
		return false, true
	case c == 'n':
		s.pos += len("null")
		return nil, true
	}
	start := s.pos
	s.number()
	f, err := strconv.ParseFloat(string(s.data[start:s.pos]), 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// onlyTextProblems reports whether every saved problem is invalid UTF-8
// (true for none).
func onlyTextProblems(ps []audit.Problem) bool {
	for _, p := range ps {
		if !strings.HasSuffix(p.Message, " is not valid UTF-8") {
			return false
		}
	}
	return true
}
