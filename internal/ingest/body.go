package ingest

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/vigilhq/vigil/internal/audit"
)

// bodyBufSize is the read buffer of one request body. A body is never held
// whole: it is read through this buffer and cut into events, so a request
// costs its decoded events plus at most one event's raw bytes.
const bodyBufSize = 32 << 10

// bodyReader cuts a request body into the raw bytes of one event at a time.
type bodyReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	err      error // the first read error; io.EOF at the end of the body
	base     int64 // body offset of buf[0]
	lines    int   // newlines in the body before buf[0]
	lastNL   int64 // body offset of the last newline before buf[0], or -1
	elem     []byte
	stack    []byte // open brackets of the element being cut
	admit    func() error
}

// bodyReaders keeps the buffers of finished bodies for the next ones: a
// fresh 32 KiB buffer per request was most of what a single-event request
// allocated (and cleared). Only buffers go back, never anything a decoded
// event refers to: the decoder copies every value out of the raw bytes.
// The pool holds at most one reader per request in flight, which
// httpapi bounds, and the GC empties it when idle.
var bodyReaders = sync.Pool{New: func() any { return &bodyReader{buf: make([]byte, bodyBufSize)} }}

// newBodyReader returns a reader of r; give it back with release once no
// raw bytes it returned are in use.
func newBodyReader(r io.Reader) *bodyReader {
	s := bodyReaders.Get().(*bodyReader)
	s.r, s.lastNL = r, -1
	return s
}

// release resets s and returns it to the pool.
func (s *bodyReader) release() {
	*s = bodyReader{buf: s.buf, elem: s.elem[:0], stack: s.stack[:0]}
	bodyReaders.Put(s)
}

// fill reads more of the body once the buffer is used up; false at the end
// of the body or on a read error (s.err says which).
func (s *bodyReader) fill() bool {
	if s.pos < s.end {
		return true
	}
	if s.err != nil {
		return false
	}
	if n := bytes.Count(s.buf[:s.end], []byte{'\n'}); n > 0 {
		s.lines += n
		s.lastNL = s.base + int64(bytes.LastIndexByte(s.buf[:s.end], '\n'))
	}
	s.base += int64(s.end)
	s.pos, s.end = 0, 0
	for {
		n, err := s.r.Read(s.buf)
		s.end = n
		if err != nil {
			s.err = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// readError is the error for a body that could not be read (too large,
// over the server's in-flight budget, the client went away), or nil at a
// clean end of the body. It keeps the reader's error in its chain so the
// HTTP layer can map it.
func (s *bodyReader) readError() error {
	if s.err == nil || s.err == io.EOF {
		return nil
	}
	return fmt.Errorf("read request body: %w", s.err)
}

// peek skips whitespace and returns the next byte without consuming it;
// false at the end of the body or on a read error.
func (s *bodyReader) peek() (byte, bool) {
	for {
		for s.pos < s.end {
			if c := s.buf[s.pos]; !isSpace(c) {
				return c, true
			}
			s.pos++
		}
		if !s.fill() {
			return 0, false
		}
	}
}

// where describes the current position, 1-based, for syntax errors.
func (s *bodyReader) where() string {
	p := min(s.pos, s.end)
	line := s.lines + bytes.Count(s.buf[:p], []byte{'\n'}) + 1
	var col int64
	if i := bytes.LastIndexByte(s.buf[:p], '\n'); i >= 0 {
		col = int64(p - i)
	} else {
		col = s.base + int64(p) - s.lastNL
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// syntax is a body-level syntax error at the current position.
func (s *bodyReader) syntax(what string) error {
	if err := s.readError(); err != nil {
		return err
	}
	return audit.Errorf(audit.EINVALID, "request body is not valid JSON: %s at %s", what, s.where())
}

// truncated is the error for a body that ends inside a value.
func (s *bodyReader) truncated() error {
	if err := s.readError(); err != nil {
		return err
	}
	return audit.Errorf(audit.EINVALID, "request body is not valid JSON: unexpected end of input at %s", s.where())
}

func isScalarByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.'
}

// element cuts the JSON value starting at the current (non-space) byte. It
// tracks only strings and bracket nesting; the event decoder checks the
// rest. The raw bytes are kept up to audit.MaxEventBytes+1 (more means the
// event is too large anyway); size is the value's full length.
func (s *bodyReader) element() (raw []byte, size int64, err error) {
	s.elem, s.stack = s.elem[:0], s.stack[:0]
	c := s.buf[s.pos]
	scalar := c != '{' && c != '[' && c != '"'
	if scalar && !isScalarByte(c) {
		return nil, 0, s.syntax(fmt.Sprintf("unexpected %q", c))
	}
	inStr, esc := false, false
	for {
		if s.pos == s.end && !s.fill() {
			if scalar && s.readError() == nil {
				return s.elem, size, nil
			}
			return nil, 0, s.truncated()
		}
		start, i, done := s.pos, s.pos, false
		buf := s.buf[:s.end]
	scan:
		for ; i < len(buf); i++ {
			c := buf[i]
			switch {
			case inStr:
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
					if len(s.stack) == 0 {
						i++
						done = true
						break scan
					}
				}
			case scalar:
				if !isScalarByte(c) {
					done = true
					break scan
				}
			case c == '"':
				inStr = true
			case c == '{' || c == '[':
				if len(s.stack) >= maxNestingDepth {
					s.pos = i
					return nil, 0, s.syntax(fmt.Sprintf("nested more than %d levels deep", maxNestingDepth))
				}
				s.stack = append(s.stack, c)
			case c == '}' || c == ']':
				open := byte('{')
				if c == ']' {
					open = '['
				}
				if len(s.stack) == 0 || s.stack[len(s.stack)-1] != open {
					s.pos = i
					return nil, 0, s.syntax(fmt.Sprintf("unexpected %q", c))
				}
				s.stack = s.stack[:len(s.stack)-1]
				if len(s.stack) == 0 {
					i++
					done = true
					break scan
				}
			}
		}
		if keep := audit.MaxEventBytes + 1 - len(s.elem); keep > 0 {
			s.elem = append(s.elem, buf[start:min(i, start+keep)]...)
		}
		size += int64(i - start)
		s.pos = i
		if done {
			return s.elem, size, nil
		}
	}
}

// one cuts and decodes the event at the current position. A syntax error
// inside the event is a body error, as it would be for encoding/json.
func (s *bodyReader) one(idx int) (Item, error) {
	if s.admit != nil {
		if err := s.admit(); err != nil {
			return Item{}, err
		}
	}
	raw, size, err := s.element()
	if err != nil {
		return Item{}, err
	}
	if size > audit.MaxEventBytes {
		return Item{Index: idx, Err: &audit.Error{Code: audit.ETOOLARGE,
			Message: fmt.Sprintf("event is %d bytes; at most %d are allowed", size, audit.MaxEventBytes)}}, nil
	}
	it := decodeOne(idx, raw)
	if it.Err != nil && !jsonValid(raw) {
		return Item{}, syntaxError(raw, fmt.Sprintf("request body event %d", idx))
	}
	return it, nil
}

// tooMany is the error for a body with more than MaxBatch events; it is
// returned when the first event over the limit starts, before it is read.
func tooMany() error {
	return audit.Errorf(audit.EINVALID, "request body has more than %d events; at most %d are allowed per request", MaxBatch, MaxBatch)
}

// array decodes a JSON array of events; the current byte is '['.
func (s *bodyReader) array() ([]Item, error) {
	s.pos++
	c, ok := s.peek()
	if !ok {
		return nil, s.truncated()
	}
	if c == ']' {
		s.pos++
		if err := s.trailing(); err != nil {
			return nil, err
		}
		return nil, audit.Errorf(audit.EINVALID, "request body is an empty array")
	}
	var items []Item
	for {
		if len(items) == MaxBatch {
			return nil, tooMany()
		}
		it, err := s.one(len(items))
		if err != nil {
			return nil, err
		}
		items = append(items, it)
		c, ok := s.peek()
		if !ok {
			return nil, s.truncated()
		}
		switch c {
		case ',':
			s.pos++
			if c, ok := s.peek(); !ok {
				return nil, s.truncated()
			} else if c == ']' {
				return nil, s.syntax("an event is missing after ','")
			}
		case ']':
			s.pos++
			if err := s.trailing(); err != nil {
				return nil, err
			}
			return items, nil
		default:
			return nil, s.syntax(fmt.Sprintf("expected ',' or ']' after event %d", len(items)-1))
		}
	}
}

// objects decodes one event object or several separated by whitespace (a
// JSON object, or NDJSON sent without its content type).
func (s *bodyReader) objects(several bool) ([]Item, error) {
	var items []Item
	for {
		c, ok := s.peek()
		if !ok {
			if err := s.readError(); err != nil {
				return nil, err
			}
			return items, nil
		}
		if len(items) > 0 && !several {
			return nil, s.syntax("data after the event (send several events as a JSON array or as NDJSON)")
		}
		if c != '{' {
			return nil, s.syntax(fmt.Sprintf("expected an event object, found %q", c))
		}
		if len(items) == MaxBatch {
			return nil, tooMany()
		}
		it, err := s.one(len(items))
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
}

// trailing checks that only whitespace follows the body's value.
func (s *bodyReader) trailing() error {
	if _, ok := s.peek(); ok {
		return s.syntax("data after the top-level value")
	}
	return s.readError()
}

// ndjson decodes one event per line; a line that is not valid JSON is that
// event's error, not the body's.
func (s *bodyReader) ndjson() ([]Item, error) {
	var items []Item
	for line := 1; ; line++ {
		raw, size, more := s.line()
		if err := s.readError(); err != nil {
			return nil, err
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 {
			if len(items) == MaxBatch {
				return nil, tooMany()
			}
			if s.admit != nil {
				if err := s.admit(); err != nil {
					return nil, err
				}
			}
			var it Item
			if size > audit.MaxEventBytes {
				it = Item{Index: len(items), Err: &audit.Error{Code: audit.ETOOLARGE,
					Message: fmt.Sprintf("event is %d bytes; at most %d are allowed", size, audit.MaxEventBytes)}}
			} else {
				it = decodeOne(len(items), raw)
				if it.Err != nil && !jsonValid(raw) {
					// Only a failed line pays for locating the syntax error.
					it.Err = syntaxError(raw, fmt.Sprintf("line %d", line))
				}
			}
			items = append(items, it)
		}
		if !more {
			break
		}
	}
	if len(items) == 0 {
		return nil, audit.Errorf(audit.EINVALID, "request body has no events")
	}
	return items, nil
}

// line cuts the next line (without its '\n'), keeping at most
// audit.MaxEventBytes+1 bytes of it; size is its full length and more
// whether a '\n' ended it.
func (s *bodyReader) line() (raw []byte, size int64, more bool) {
	s.elem = s.elem[:0]
	for {
		if s.pos == s.end && !s.fill() {
			return s.elem, size, false
		}
		buf := s.buf[s.pos:s.end]
		i := bytes.IndexByte(buf, '\n')
		n := len(buf)
		if i >= 0 {
			n = i
		}
		if keep := audit.MaxEventBytes + 1 - len(s.elem); keep > 0 {
			s.elem = append(s.elem, buf[:min(n, keep)]...)
		}
		size += int64(n)
		if i >= 0 {
			s.pos += i + 1
			return s.elem, size, true
		}
		s.pos = s.end
	}
}
