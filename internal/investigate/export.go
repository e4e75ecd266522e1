package investigate

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/export/ecs"
	"github.com/vigilhq/vigil/internal/export/ocsf"
)

// Export formats.
const (
	ExportCSV    = "csv"
	ExportNDJSON = "ndjson"
	// ExportOCSF is NDJSON of OCSF 1.2.0 objects, one per event (see
	// internal/export/ocsf); it exports events only, not stats rows.
	ExportOCSF = "ocsf"
	// ExportECS is NDJSON of Elastic Common Schema documents, one per
	// event (see internal/export/ecs); events only.
	ExportECS = "ecs"
)

// ExportFormat checks an export format; "" is CSV.
func ExportFormat(f string) (string, error) {
	switch f {
	case "":
		return ExportCSV, nil
	case ExportCSV, ExportNDJSON, ExportOCSF, ExportECS:
		return f, nil
	}
	return "", audit.FieldErrorf("format", "format must be csv, ndjson, ocsf or ecs")
}

// ExportContentType is the Content-Type of an export format.
func ExportContentType(format string) string {
	if format == ExportCSV {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// ExportExtension is the file name extension of an export format.
func ExportExtension(format string) string {
	if format == ExportCSV {
		return "csv"
	}
	return "ndjson"
}

// ListFormat checks the format of a findings or incidents listing: "" is
// the JSON page, ExportOCSF NDJSON of OCSF Detection Findings, ExportECS
// NDJSON of ECS alert documents.
func ListFormat(f string) (string, error) {
	switch f {
	case "", ExportOCSF, ExportECS:
		return f, nil
	}
	return "", audit.FieldErrorf("format", "format must be ocsf or ecs (or absent for the JSON page)")
}

// MapFinding maps a finding onto format's schema (ExportOCSF or ExportECS).
func MapFinding(format string, f *audit.Finding) any {
	if format == ExportECS {
		return ecs.Finding(f)
	}
	return ocsf.Finding(f)
}

// MapIncident maps an incident onto format's schema (ExportOCSF or ExportECS).
func MapIncident(format string, in *audit.Incident) any {
	if format == ExportECS {
		return ecs.Incident(in)
	}
	return ocsf.Incident(in)
}

// mapsEvents reports whether format writes each event as a mapped object
// of another schema.
func mapsEvents(format string) bool { return format == ExportOCSF || format == ExportECS }

// mapEvent maps an event onto format's schema.
func mapEvent(format string, ev *audit.Event) any {
	if format == ExportECS {
		return ecs.Event(ev)
	}
	return ocsf.Event(ev)
}

// Export is the audit.QuerySink behind every export, the API's and the
// console's: it writes a query's rows as CSV (a header, then one line a
// row, cells made safe for spreadsheets by Cell), NDJSON (the stored
// event of an event row, or an object of the row's columns) or OCSF
// (NDJSON of each event mapped onto its OCSF class; a row that is not an
// event fails the export) to a buffered writer, and calls Flush every FlushEvery rows so the reader sees
// progress. Memory stays constant whatever the number of rows.
type Export struct {
	// W receives the rows.
	W *bufio.Writer
	// Format is ExportCSV, ExportNDJSON or ExportOCSF.
	Format string
	// FlushEvery is how many rows pass between calls of Flush (default
	// 4096); Flush (optional) pushes W's bytes to the client and may end
	// the export with an error (a cancelled request, for instance).
	FlushEvery int
	Flush      func() error

	cols    []audit.QueryColumn
	csv     *csv.Writer
	rec     []string
	obj     map[string]any
	enc     *json.Encoder
	rows    int
	started bool
}

var _ audit.QuerySink = (*Export)(nil)

// Rows is how many rows were written.
func (e *Export) Rows() int { return e.rows }

// Started reports whether anything may have been written: after that, an
// error can only end the stream, not change the response. A mapped format
// starts with its first row, so a query that yields no events can still
// be refused.
func (e *Export) Started() bool { return e.started }

// Columns implements audit.QuerySink: the CSV header.
func (e *Export) Columns(cols []audit.QueryColumn) error {
	e.cols, e.started = cols, !mapsEvents(e.Format)
	if e.Format != ExportCSV {
		e.enc = json.NewEncoder(e.W)
		e.enc.SetEscapeHTML(false)
		e.obj = make(map[string]any, len(cols))
		return nil
	}
	e.csv = csv.NewWriter(e.W)
	e.rec = make([]string, len(cols))
	for i, c := range cols {
		e.rec[i] = c.Name
	}
	return e.csv.Write(e.rec)
}

// Row implements audit.QuerySink.
func (e *Export) Row(vals []any, ev *audit.Event) error {
	var err error
	switch {
	case mapsEvents(e.Format) && ev == nil:
		return audit.FieldErrorf("format", "format %s exports whole events, and this query has a stats or fields stage: export it as csv or ndjson", e.Format)
	case mapsEvents(e.Format):
		e.started = true
		err = e.enc.Encode(mapEvent(e.Format, ev))
	case e.Format == ExportNDJSON && ev != nil:
		err = e.enc.Encode(ev)
	case e.Format == ExportNDJSON:
		for i, c := range e.cols {
			e.obj[c.Name] = vals[i]
		}
		err = e.enc.Encode(e.obj)
	default:
		for i, v := range vals {
			e.rec[i] = Cell(v)
		}
		err = e.csv.Write(e.rec)
	}
	if err != nil {
		return err
	}
	e.rows++
	every := e.FlushEvery
	if every <= 0 {
		every = 4096
	}
	if e.rows%every == 0 {
		if err := e.flushCSV(); err != nil {
			return err
		}
		if e.Flush != nil {
			return e.Flush()
		}
	}
	return nil
}

func (e *Export) flushCSV() error {
	if e.csv == nil {
		return nil
	}
	e.csv.Flush()
	return e.csv.Error()
}

// Finish writes out what is still buffered, the CSV writer's and W's.
func (e *Export) Finish() error {
	if err := e.flushCSV(); err != nil {
		return err
	}
	return e.W.Flush()
}

// Cell renders a value for a CSV cell. A cell that a spreadsheet would run
// as a formula (=, +, -, @, tab or CR first) is prefixed with a quote:
// exported logs carry attacker-chosen strings (user agents, attempted user
// names). Numbers are never prefixed.
func Cell(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		s = x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case netip.Addr:
		return x.String()
	case []string:
		s = strings.Join(x, ";")
	default:
		b, _ := json.Marshal(x)
		s = string(b)
	}
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
