package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// QueryColumn is one column of a query result. Type is "text", "number",
// "ip" or "time".
type QueryColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// QueryStats says how much work a query did.
type QueryStats struct {
	Partitions int   `json:"partitions"`
	Scanned    int64 `json:"scanned"`
	Matched    int64 `json:"matched"`
	Rows       int64 `json:"rows"`
	// Truncated reports that the result was cut at 10,000 rows.
	Truncated bool          `json:"truncated,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
}

// QueryResult is the table a query produced (POST /v1/query). Rows[i][j]
// is the value of Columns[j], decoded from JSON: a string (text, ip and
// time columns, times in RFC 3339), a json.Number (number columns), a
// []any (list fields) or nil. For a query whose rows are events and that
// has no fields stage, Events[i] is the whole event of Rows[i].
type QueryResult struct {
	// Query is the canonical form of the query, with its resolved time range.
	Query   string        `json:"query"`
	Columns []QueryColumn `json:"columns"`
	Rows    [][]any       `json:"rows"`
	Events  []Event       `json:"events,omitempty"`
	Stats   QueryStats    `json:"stats"`
}

type queryRequest struct {
	Q      string `json:"q"`
	Tenant string `json:"tenant,omitempty"`
	Format string `json:"format,omitempty"`
}

// Query runs a query in Vigil's query language (docs/query-language.md),
// e.g. `action:auth.login.failure | stats dc(actor.id) by ip | sort
// -dc_actor_id | head 20`, scoped to the client's tenant (an operator
// client without one queries every tenant). A malformed query is an
// ErrInvalid *Error whose message names the column.
func (c *Client) Query(ctx context.Context, q string) (*QueryResult, error) {
	b, err := json.Marshal(queryRequest{Q: q, Tenant: c.tenant})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/query", body: b, idempotent: true})
	if err != nil {
		return nil, err
	}
	var res QueryResult
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("vigil: POST /v1/query: malformed response: %w", err)
	}
	return &res, nil
}

// Export formats.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
	// FormatOCSF is NDJSON of OCSF 1.2.0 objects: events with Export,
	// findings and incidents (Detection Findings) with ExportFindings and
	// ExportIncidents (docs/exports.md has the mapping).
	FormatOCSF = "ocsf"
	// FormatECS is NDJSON of Elastic Common Schema documents: events with
	// Export, findings and incidents (alert documents) with ExportFindings
	// and ExportIncidents.
	FormatECS = "ecs"
)

// ExportOptions configures Export.
type ExportOptions struct {
	// Format is FormatCSV (the default), FormatNDJSON, FormatOCSF or FormatECS.
	Format string
	// Progress, when set, is called as data arrives with the bytes
	// received so far, at most every 64 KiB.
	Progress func(bytes int64)
}

// Export streams every row of a query to w as CSV or NDJSON (POST
// /v1/export) and returns the number of rows the server reported. The
// response is copied as it arrives, so memory stays constant however large
// the export; the client's HTTP timeout does not apply (cancel ctx
// instead). An export that the server ended early (a query error or limit
// after the first row) returns an error after writing the rows received.
func (c *Client) Export(ctx context.Context, q string, w io.Writer, o ExportOptions) (rows int64, err error) {
	if o.Format == "" {
		o.Format = FormatCSV
	}
	b, err := json.Marshal(queryRequest{Q: q, Tenant: c.tenant, Format: o.Format})
	if err != nil {
		return 0, err
	}
	u := *c.base
	u.Path = c.base.Path + "/v1/export"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	hc := *c.http
	hc.Timeout = 0 // an export takes as long as it takes; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("vigil: POST /v1/export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return 0, parseError(resp.StatusCode, resp.Header, body, c.now())
	}
	var total int64
	buf := make([]byte, 64<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return 0, werr
			}
			total += int64(n)
			if o.Progress != nil {
				o.Progress(total)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("vigil: POST /v1/export: %w", rerr)
		}
	}
	rs := resp.Trailer.Get("X-Vigil-Rows")
	if rs == "" {
		return 0, fmt.Errorf("vigil: POST /v1/export: the server ended the export early (after %d bytes); see its log", total)
	}
	n, err := strconv.ParseInt(rs, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("vigil: POST /v1/export: bad row count %q", url.QueryEscape(rs))
	}
	return n, nil
}
