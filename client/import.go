package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
)

// ImportFormats are the vendor formats POST /v1/import/{format} reads
// (docs/importers.md has each mapping).
var ImportFormats = []string{"okta", "auth0", "gws", "github", "cloudtrail"}

// ImportOptions tune one Import call.
type ImportOptions struct {
	// File is recorded in each event's metadata.import.file (at most 256
	// bytes), so imported history can be traced to its source.
	File string
	// Backfill marks the records as history (metadata.import.backfill):
	// "silent" builds detection's profiles and baselines from them and
	// stores the findings they raise, flagged, without alerting; "alert"
	// flags and alerts them. "" imports them as live events.
	Backfill string
}

// ImportResult is the answer to one batch of vendor records.
type ImportResult struct {
	Format     string         `json:"format"`
	Accepted   int            `json:"accepted"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	Results    []ImportRecord `json:"results"`
}

// ImportRecord is the outcome of one record: Index is its position in the
// batch, Line the line of the request body on which it starts, Action
// what it was mapped to, Error why it was rejected.
type ImportRecord struct {
	Index  int        `json:"index"`
	Line   int        `json:"line"`
	Status string     `json:"status"`
	ID     string     `json:"id,omitempty"`
	Action string     `json:"action,omitempty"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// Import sends one batch of vendor records in format (NDJSON or one JSON
// array; at most MaxEventsPerBatch records and MaxRequestBytes) to
// POST /v1/import/{format}. Event ids derive from the vendor's ids, so a
// retry after a lost answer stores nothing twice: Import retries like
// Send. When every record was rejected the result comes back together with
// the *Error.
func (c *Client) Import(ctx context.Context, format string, body []byte, o ImportOptions) (*ImportResult, error) {
	return c.importBody(ctx, format, body, "application/x-ndjson", o)
}

func (c *Client) importBody(ctx context.Context, format string, body []byte, contentType string, o ImportOptions) (*ImportResult, error) {
	q := c.scope(nil)
	if o.File != "" {
		q.Set("file", o.File)
	}
	if o.Backfill != "" {
		q.Set("backfill", o.Backfill)
	}
	path := "/v1/import/" + url.PathEscape(format)
	resp, err := c.do(ctx, call{method: http.MethodPost, path: path, query: q, body: body,
		contentType: contentType, idempotent: true})
	var apiErr *Error
	switch {
	case err == nil:
		var res ImportResult
		if derr := json.Unmarshal(resp.body, &res); derr != nil {
			return nil, fmt.Errorf("vigil: POST %s: malformed response: %w", path, derr)
		}
		return &res, nil
	case resp != nil && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest:
		var res ImportResult
		if json.Unmarshal(resp.body, &res) == nil && len(res.Results) > 0 {
			return &res, err
		}
	}
	return nil, err
}

// Mapped import formats: files of any shape read with a mapping file
// (docs/importers.md, "Any CSV or NDJSON file").
const (
	ImportCSV    = "csv"
	ImportNDJSON = "ndjson"
)

// ImportMapped sends one batch of a CSV file (with its header row) or an
// NDJSON file, with the mapping file (YAML) that reads it, to POST
// /v1/import/csv or /v1/import/ndjson as multipart/form-data (parts
// mapping and file). The server applies the mapping; the limits, the
// idempotency (event ids derive from the mapping's id field or the
// record) and the answer are Import's.
func (c *Client) ImportMapped(ctx context.Context, format string, mapping, data []byte, o ImportOptions) (*ImportResult, error) {
	if format != ImportCSV && format != ImportNDJSON {
		return nil, fmt.Errorf("vigil: mapped import format %q: want %s or %s", format, ImportCSV, ImportNDJSON)
	}
	fileType := "text/csv"
	if format == ImportNDJSON {
		fileType = "application/x-ndjson"
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range []struct {
		name, file, ctype string
		data              []byte
	}{{"mapping", "mapping.yaml", "application/yaml", mapping}, {"file", "records." + format, fileType, data}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.file))
		h.Set("Content-Type", p.ctype)
		w, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(p.data); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return c.importBody(ctx, format, body.Bytes(), mw.FormDataContentType(), o)
}
