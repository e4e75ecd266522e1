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
)

// Export formats.
const (
	ExportCSV    = "csv"
	ExportNDJSON = "ndjson"
)

// ExportFormat checks an export format; "" is CSV.
func ExportFormat(f string) (string, error) {
	switch f {
	case "":
		return ExportCSV, nil
	case ExportCSV, ExportNDJSON:
		return f, nil
	}
	return "", audit.FieldErrorf("format", "format must be csv or ndjson")
}

// ExportContentType is the Content-Type of an export format.
func ExportContentType(format string) string {
	if format == ExportNDJSON {
		return "application/x-ndjson"
	}
	return "text/csv; charset=utf-8"
}

// Export is the audit.QuerySink behind every export, the API's and the
// console's: it writes a query's rows as CSV (a header, then one line a
// row, cells made safe for spreadsheets by Cell) or NDJSON (the stored
// event of an event row, or an object of the row's columns) to a buffered
// writer, and calls Flush every FlushEvery rows so the reader sees
// progress. Memory stays constant whatever the number of rows.
type Export struct {
	// W receives the rows.
	W *bufio.Writer
	// Format is ExportCSV or ExportNDJSON.
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

// Started reports whether anything was written: after that, an error can
// only end the stream, not change the response.
func (e *Export) Started() bool { return e.started }

// Columns implements audit.QuerySink: the CSV header.
func (e *Export) Columns(cols []audit.QueryColumn) error {
	e.cols, e.started = cols, true
	if e.Format == ExportNDJSON {
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
