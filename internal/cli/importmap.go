package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/mapping"
)

// loadMapping reads and checks a mapping file for the csv or ndjson
// format named on the command line, so a mistake in it is reported before
// anything is sent. It returns the file as read, which goes to the server
// with every batch.
func loadMapping(path, format string) (*mapping.Mapping, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, mapping.MaxFileBytes+1))
	if err != nil {
		return nil, nil, err
	}
	m, err := mapping.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Format() != format {
		return nil, nil, usagef("%s maps %s records; it cannot import %s", path, m.Format(), format)
	}
	return m, b, nil
}

// csv sends a CSV file with a header row in batches, the header first in
// each, to POST /v1/import/csv with the mapping: the server maps the rows.
// Rows are re-encoded as they were read (the values, and so the event
// ids, are the same). A row whose quoting cannot be read is reported with
// its line here; the server reports the rest, and flush maps each result
// back to its line in the file.
func (r *importRun) csv(ctx context.Context, m *mapping.Mapping, in io.Reader, batch int) error {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1 // the server checks each row against the header
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("no header row")
		}
		return fmt.Errorf("header row: %w", err)
	}
	if err := m.Header(header); err != nil {
		return fmt.Errorf("header row: %s", audit.ErrorMessage(err))
	}
	if r.header, err = encodeCSV(header); err != nil {
		return err
	}
	lastBad := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return r.flush(ctx)
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return err
			}
			// A quoting error the reader cannot resynchronise from
			// would repeat, so that ends the import.
			if pe.StartLine == lastBad {
				return fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
			}
			lastBad = pe.StartLine
			r.reject(pe.StartLine, "", pe.Err.Error())
			r.sent++
			continue
		}
		line, _ := cr.FieldPos(0)
		rec, err := encodeCSV(row)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := r.add(ctx, line, rec, batch); err != nil {
			return err
		}
	}
}

func encodeCSV(row []string) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(row); err != nil {
		return nil, err
	}
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), w.Error()
}

// isMappedFormat says whether an import format needs a mapping file.
func isMappedFormat(format string) bool {
	return format == client.ImportCSV || format == client.ImportNDJSON
}

// importFormats lists every format import reads.
func importFormats() string {
	return strings.Join(append(append([]string{}, client.ImportFormats...), client.ImportCSV, client.ImportNDJSON), ", ")
}
