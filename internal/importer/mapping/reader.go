package mapping

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Reader decodes the records of one file with a mapping, streaming: a CSV
// file (a header row, then one event per row) or NDJSON (or one JSON
// array of records). Memory holds one record at a time. The CLI and
// POST /v1/import/csv|ndjson read files through it.
type Reader struct {
	m       *Mapping
	csv     *csv.Reader
	header  int // columns in the CSV header
	lastBad int // line of the last CSV row that could not be split
	next    func() (importer.Decoded, error)
}

// NewReader starts reading in with m. For CSV it reads the header row
// now: a file without one, or whose header lacks a column the mapping
// names, is an EINVALID error naming the column (the Mapping then holds
// that header, so one Mapping reads one file at a time).
func (m *Mapping) NewReader(in io.Reader) (*Reader, error) {
	r := &Reader{m: m}
	if m.f.Format == FormatNDJSON {
		r.next = importer.DecodeAll(importer.NewReader(in), m.DecodeJSON)
		return r, nil
	}
	r.csv = csv.NewReader(in)
	r.csv.ReuseRecord = true
	header, err := r.csv.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, audit.Errorf(audit.EINVALID, "the file has no header row")
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, audit.Errorf(audit.EINVALID, "header row: %s", pe.Err)
		}
		return nil, fmt.Errorf("header row: %w", err)
	}
	r.header = len(header)
	if err := m.Header(header); err != nil {
		return nil, err
	}
	return r, nil
}

// Next returns the next record, decoded or with the reason it could not
// be (a CSV row with the wrong number of fields, a record over
// importer.MaxRecordBytes, a field the mapping cannot use), or io.EOF
// after the last. Any other error is fatal: a read error, or CSV quoting
// the reader cannot resynchronise from; it names the line.
func (r *Reader) Next() (importer.Decoded, error) {
	if r.next != nil {
		return r.next()
	}
	row, err := r.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return importer.Decoded{}, err
		}
		// A row with the wrong number of fields is skipped and the reader
		// goes on; a quoting error it cannot resynchronise from would
		// repeat, so that ends the file.
		if pe.StartLine == r.lastBad {
			return importer.Decoded{}, audit.Errorf(audit.EINVALID, "line %d: %s", pe.StartLine, pe.Err)
		}
		r.lastBad = pe.StartLine
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = fmt.Sprintf("the row has %d fields, the header %d", len(row), r.header)
		}
		return importer.Decoded{Line: pe.StartLine, Err: audit.Errorf(audit.EINVALID, "%s", msg)}, nil
	}
	line, _ := r.csv.FieldPos(0)
	size := 0
	for _, f := range row {
		size += len(f) + 1
	}
	d := importer.Decoded{Line: line, Size: size}
	if size > importer.MaxRecordBytes {
		d.Err = audit.Errorf(audit.ETOOLARGE, "the record is over %d KiB", importer.MaxRecordBytes>>10)
		return d, nil
	}
	d.Event, d.Err = r.m.DecodeRow(row)
	return d, nil
}
