package importer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/vigilhq/vigil/internal/audit"
)

// MaxRecordBytes is the largest vendor record accepted. Vendor records are
// bigger than Vigil events (an Okta System Log record with its debug
// context runs to several KiB), but none legitimately comes near this.
const MaxRecordBytes = 256 << 10

// Record is one vendor record split from an input. Line is the 1-based
// line on which it starts. Err, when set, is why this record could not be
// split out (too large, not JSON); the reader has skipped it and the next
// record can still be read.
type Record struct {
	Line int
	Raw  []byte
	Err  error
}

// Reader splits an input into records, streaming: NDJSON (one JSON value
// per line; blank lines are skipped) or one top-level JSON array of
// records. Memory holds one record at a time.
type Reader struct {
	br      *bufio.Reader
	line    int // lines consumed so far (the current line is line+1)
	started bool
	array   bool
	done    bool
	elems   int
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record, or io.EOF after the last. Any other error
// is fatal: the input cannot be split further (a JSON array whose syntax
// breaks, a read error), and it names the line.
func (r *Reader) Next() (Record, error) {
	if r.done {
		return Record{}, io.EOF
	}
	if !r.started {
		r.started = true
		c, err := r.skipSpace()
		if err != nil {
			r.done = true
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, err
		}
		if c == '[' {
			_, _ = r.br.ReadByte()
			r.array = true
		}
	}
	if r.array {
		return r.nextElement()
	}
	return r.nextLine()
}

// skipSpace consumes whitespace, counting lines, and peeks the next byte.
func (r *Reader) skipSpace() (byte, error) {
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case '\n':
			r.line++
		case ' ', '\t', '\r':
		default:
			_ = r.br.UnreadByte()
			return b, nil
		}
	}
}

// nextLine returns the next non-blank line as a record.
func (r *Reader) nextLine() (Record, error) {
	for {
		line, tooLong, err := r.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			r.done = true
			return Record{}, fmt.Errorf("line %d: %w", r.line+1, err)
		}
		if len(line) == 0 && !tooLong && err != nil {
			r.done = true
			return Record{}, io.EOF
		}
		r.line++
		if tooLong {
			return Record{Line: r.line, Err: tooLarge()}, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			if err != nil {
				r.done = true
				return Record{}, io.EOF
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			r.done = true
		}
		return Record{Line: r.line, Raw: line}, nil
	}
}

// readLine reads up to and excluding the next '\n'. A line longer than
// MaxRecordBytes is consumed but not kept (tooLong).
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > MaxRecordBytes+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf, []byte("\n")), tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, tooLong, err
		}
	}
}

// nextElement returns the next element of the top-level array.
func (r *Reader) nextElement() (Record, error) {
	c, err := r.skipSpace()
	if err != nil {
		return Record{}, r.fatal("the JSON array is not closed")
	}
	if r.elems > 0 {
		switch c {
		case ']':
			return r.end()
		case ',':
			_, _ = r.br.ReadByte()
			if c, err = r.skipSpace(); err != nil {
				return Record{}, r.fatal("the JSON array is not closed")
			}
		default:
			return Record{}, r.fatal(fmt.Sprintf("expected ',' or ']' after array element %d, found %q", r.elems, c))
		}
	} else if c == ']' {
		return r.end()
	}
	start := r.line + 1
	raw, tooLong, err := r.value()
	if err != nil {
		return Record{}, err
	}
	r.elems++
	if tooLong {
		return Record{Line: start, Err: tooLarge()}, nil
	}
	return Record{Line: start, Raw: raw}, nil
}

// end consumes ']' and checks that only whitespace follows.
func (r *Reader) end() (Record, error) {
	_, _ = r.br.ReadByte()
	r.done = true
	if _, err := r.skipSpace(); err == nil {
		return Record{}, r.fatal("unexpected data after the JSON array")
	}
	return Record{}, io.EOF
}

func (r *Reader) fatal(msg string) error {
	r.done = true
	return audit.Errorf(audit.EINVALID, "line %d: %s", r.line+1, msg)
}

// value reads one JSON value (an object, array, string or literal)
// byte by byte, tracking strings and nesting, so a record's end is found
// without decoding it. Bytes beyond MaxRecordBytes are skipped, not kept.
func (r *Reader) value() (raw []byte, tooLong bool, err error) {
	var buf []byte
	depth, inStr, esc := 0, false, false
	keep := func(b byte) {
		if tooLong {
			return
		}
		if len(buf) == MaxRecordBytes {
			tooLong, buf = true, nil
			return
		}
		buf = append(buf, b)
	}
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return nil, false, r.fatal("the JSON array ends inside an element")
		}
		if b == '\n' {
			r.line++
		}
		switch {
		case inStr:
			keep(b)
			switch {
			case esc:
				esc = false
			case b == '\\':
				esc = true
			case b == '"':
				inStr = false
				if depth == 0 {
					return buf, tooLong, nil
				}
			}
		case b == '"':
			inStr = true
			keep(b)
		case b == '{' || b == '[':
			depth++
			if depth > 1000 {
				return nil, false, r.fatal("an array element is nested too deeply")
			}
			keep(b)
		case b == '}' || b == ']':
			if depth == 0 {
				_ = r.br.UnreadByte()
				if b == '\n' {
					r.line--
				}
				return buf, tooLong, nil
			}
			depth--
			keep(b)
			if depth == 0 {
				return buf, tooLong, nil
			}
		case depth == 0 && (b == ',' || b == ' ' || b == '\t' || b == '\r' || b == '\n'):
			// The end of a literal element (a number, true, null).
			_ = r.br.UnreadByte()
			if b == '\n' {
				r.line--
			}
			return buf, tooLong, nil
		default:
			keep(b)
		}
	}
}

func tooLarge() error {
	return audit.Errorf(audit.ETOOLARGE, "the record is over %d KiB", MaxRecordBytes>>10)
}

// Decoded is one record of an import decoded to an event: Line is the
// 1-based line on which it starts, Size its bytes in the input, and
// either Event or Err (why it yields no event, naming the field) is set.
type Decoded struct {
	Line  int
	Size  int
	Event *audit.Event
	Err   error
}

// DecodeAll returns an iterator over the records of r decoded with dec:
// each call gives the next record, io.EOF after the last, or the
// reader's fatal error.
func DecodeAll(r *Reader, dec Decoder) func() (Decoded, error) {
	return func() (Decoded, error) {
		rec, err := r.Next()
		if err != nil {
			return Decoded{}, err
		}
		d := Decoded{Line: rec.Line, Size: len(rec.Raw), Err: rec.Err}
		if rec.Err == nil {
			d.Event, d.Err = dec(rec.Raw)
		}
		return d, nil
	}
}
