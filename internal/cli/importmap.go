package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/importer/mapping"
)

// loadMapping reads and checks a mapping file for the csv or ndjson
// format named on the command line.
func loadMapping(path, format string) (*mapping.Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, mapping.MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	m, err := mapping.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Format() != format {
		return nil, usagef("%s maps %s records; it cannot import %s", path, m.Format(), format)
	}
	return m, nil
}

// mappedRun maps a CSV or NDJSON file's records onto events locally and
// sends them in batches to POST /v1/events, tallying the answers as
// importRun does for vendor files.
type mappedRun struct {
	c                   *client.Client
	m                   *mapping.Mapping
	file                string // recorded in metadata.import.file; "" for stdin
	backfill            string // the history mark of every event (metadata.import.backfill)
	out                 io.Writer
	p                   *sendProgress
	acc, dup, rej, sent int
	events              []client.Event
	size                int   // the encoded bytes of events
	lines               []int // the file line of each event
}

// csv reads a CSV file with a header row, one event per row.
func (r *mappedRun) csv(ctx context.Context, in io.Reader, batch int) error {
	cr := csv.NewReader(in)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("no header row")
		}
		return fmt.Errorf("header row: %w", err)
	}
	if err := r.m.Header(header); err != nil {
		return fmt.Errorf("header row: %s", audit.ErrorMessage(err))
	}
	lastBad := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return r.flush(ctx)
		}
		var pe *csv.ParseError
		if err != nil {
			if !errors.As(err, &pe) {
				return err
			}
			// A row with the wrong number of fields is skipped and the
			// reader goes on; a quoting error it cannot resynchronise
			// from would repeat, so that ends the import.
			if pe.StartLine == lastBad {
				return fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
			}
			lastBad = pe.StartLine
			msg := pe.Err.Error()
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				msg = fmt.Sprintf("the row has %d fields, the header %d", len(row), len(header))
			}
			r.reject(pe.StartLine, "", msg)
			r.sent++
			continue
		}
		line, _ := cr.FieldPos(0)
		ev, err := r.m.DecodeRow(row)
		if err := r.add(ctx, line, ev, err, batch); err != nil {
			return err
		}
	}
}

// ndjson reads NDJSON (or one JSON array) records.
func (r *mappedRun) ndjson(ctx context.Context, in io.Reader, batch int) error {
	rd := importer.NewReader(in)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return r.flush(ctx)
		}
		if err != nil {
			return err
		}
		if rec.Err != nil {
			r.reject(rec.Line, "", audit.ErrorMessage(rec.Err))
			r.sent++
			continue
		}
		ev, err := r.m.DecodeJSON(rec.Raw)
		if err := r.add(ctx, rec.Line, ev, err, batch); err != nil {
			return err
		}
	}
}

// add queues one mapped record (or reports why it could not be mapped).
func (r *mappedRun) add(ctx context.Context, line int, ev *audit.Event, mapErr error, batch int) error {
	if mapErr != nil {
		// One line per record; the message names every field at fault.
		r.reject(line, audit.ErrorField(mapErr), audit.ErrorMessage(mapErr))
		r.sent++
		return nil
	}
	e := wireEvent(ev, r.file, r.backfill)
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	if r.size+len(b)+1 > maxImportBody {
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	r.events = append(r.events, e)
	r.size += len(b) + 1
	r.lines = append(r.lines, line)
	if len(r.events) == batch {
		return r.flush(ctx)
	}
	return nil
}

func (r *mappedRun) flush(ctx context.Context) error {
	if len(r.events) == 0 {
		return nil
	}
	res, err := r.c.Send(ctx, r.events...)
	if res != nil {
		r.acc, r.dup = r.acc+res.Accepted, r.dup+res.Duplicates
		for _, x := range res.Results {
			if x.Status == client.StatusRejected && x.Error != nil && x.Index >= 0 && x.Index < len(r.lines) {
				r.reject(r.lines[x.Index], x.Error.Field, x.Error.Message)
			}
		}
	}
	var apiErr *client.Error
	if err != nil && (res == nil || !errors.As(err, &apiErr) || apiErr.Code != client.CodeInvalid) {
		return fmt.Errorf("import lines %d-%d: %w", r.lines[0], r.lines[len(r.lines)-1], err)
	}
	r.sent += len(r.events)
	r.events, r.size, r.lines = r.events[:0], 0, r.lines[:0]
	r.p.update(r.sent, r.rej, false)
	return nil
}

func (r *mappedRun) reject(line int, field, msg string) {
	r.rej++
	if field != "" {
		field = " (" + field + ")"
	}
	r.p.clear()
	fmt.Fprintf(r.out, "line %d rejected%s: %s\n", line, field, msg)
}

// wireEvent is a mapped event in the API's wire form, with the file it
// came from and, for a backfill, the history mark in metadata.import.
func wireEvent(ev *audit.Event, file, backfill string) client.Event {
	e := client.Event{ID: ev.ID, Time: ev.Time, Action: ev.Action, Outcome: string(ev.Outcome), Reason: ev.Reason,
		Actor:  client.Actor{ID: ev.Actor.ID, Type: ev.Actor.Type, Email: ev.Actor.Email, Name: ev.Actor.Name},
		Target: client.Target{Type: ev.Target.Type, ID: ev.Target.ID, Name: ev.Target.Name},
		Context: client.Context{UserAgent: ev.Context.UserAgent, SessionID: ev.Context.SessionID, RequestID: ev.Context.RequestID,
			AuthMethod: ev.Context.AuthMethod, DeviceID: ev.Context.DeviceID},
		Metadata: ev.Metadata}
	if ev.Context.IP.IsValid() {
		e.Context.IP = ev.Context.IP.String()
	}
	if g := ev.Context.Geo; g != nil {
		e.Context.Geo = &client.ClientGeo{Country: g.Country, Region: g.Region, City: g.City, Latitude: g.Latitude, Longitude: g.Longitude}
	}
	imp, _ := e.Metadata["import"].(map[string]any)
	if imp == nil {
		imp = map[string]any{}
		e.Metadata["import"] = imp
	}
	if file != "" {
		imp["file"] = importer.Text(file, 256)
	}
	if backfill != "" {
		imp["backfill"] = backfill
	}
	return e
}

// isMappedFormat says whether an import format needs a mapping file.
func isMappedFormat(format string) bool {
	return format == mapping.FormatCSV || format == mapping.FormatNDJSON
}

// importFormats lists every format import reads.
func importFormats() string {
	return strings.Join(append(append([]string{}, client.ImportFormats...), mapping.FormatCSV, mapping.FormatNDJSON), ", ")
}
