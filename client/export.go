package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
)

// ExportFindings writes the findings p selects to w in an export format
// (FormatOCSF: one OCSF Detection Finding a line; FormatECS: one ECS alert
// document a line) through GET
// /v1/findings?format=, following cursors until max findings were written
// (max <= 0: all of them). It returns how many were written.
func (c *Client) ExportFindings(ctx context.Context, p FindingParams, format string, w io.Writer, max int) (int, error) {
	return c.exportPages(ctx, "/v1/findings", format, w, max, p.Limit, func(cursor string, limit int) url.Values {
		p.Cursor, p.Limit = cursor, limit
		return p.values()
	})
}

// ExportIncidents is ExportFindings for incidents (GET /v1/incidents?format=).
func (c *Client) ExportIncidents(ctx context.Context, p IncidentParams, format string, w io.Writer, max int) (int, error) {
	return c.exportPages(ctx, "/v1/incidents", format, w, max, p.Limit, func(cursor string, limit int) url.Values {
		p.Cursor, p.Limit = cursor, limit
		return p.values()
	})
}

func (c *Client) exportPages(ctx context.Context, path, format string, w io.Writer, max, pageSize int, values func(cursor string, limit int) url.Values) (int, error) {
	written, cursor := 0, ""
	for {
		limit := pageSize
		if max > 0 && (limit <= 0 || limit > max-written) {
			limit = min(max-written, MaxPageSize)
		}
		q := values(cursor, limit)
		q.Set("format", format)
		resp, err := c.do(ctx, call{method: http.MethodGet, path: path, query: c.scope(q), idempotent: true})
		if err != nil {
			return written, err
		}
		body := resp.body
		for len(body) > 0 && (max <= 0 || written < max) {
			line, rest, _ := bytes.Cut(body, []byte("\n"))
			body = rest
			if len(line) == 0 {
				continue
			}
			if _, err := w.Write(append(line[:len(line):len(line)], '\n')); err != nil {
				return written, err
			}
			written++
		}
		cursor = resp.header.Get("X-Vigil-Next-Cursor")
		if cursor == "" || (max > 0 && written >= max) {
			return written, nil
		}
	}
}
