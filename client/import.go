package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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
	q := c.scope(nil)
	if o.File != "" {
		q.Set("file", o.File)
	}
	if o.Backfill != "" {
		q.Set("backfill", o.Backfill)
	}
	path := "/v1/import/" + url.PathEscape(format)
	resp, err := c.do(ctx, call{method: http.MethodPost, path: path, query: q, body: body,
		contentType: "application/x-ndjson", idempotent: true})
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
