package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Per-event result statuses.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRejected  = "rejected"
)

// Limits of POST /v1/events.
const (
	MaxEventBytes     = 32 << 10 // one encoded event
	MaxRequestBytes   = 16 << 20 // one request body
	MaxEventsPerBatch = 10000    // events in one request
)

// IngestResult is the server's answer to a batch: counts and one result per
// event, in request order.
type IngestResult struct {
	Accepted   int           `json:"accepted"`
	Duplicates int           `json:"duplicates"`
	Rejected   int           `json:"rejected"`
	Results    []EventResult `json:"results"`
}

// EventResult is the outcome of one event of a batch. Index is its position
// in the request; Status is one of the Status* constants; ID is the stored
// (or previously stored) event's id; Error explains a rejection.
type EventResult struct {
	Index  int        `json:"index"`
	Status string     `json:"status"`
	ID     string     `json:"id,omitempty"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// String summarises the batch: "2 accepted, 0 duplicates, 1 rejected".
func (r *IngestResult) String() string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%d accepted, %d duplicates, %d rejected", r.Accepted, r.Duplicates, r.Rejected)
}

// String describes one event's outcome: "event 3 accepted (id 01J…)" or
// "event 4 rejected: vigil: invalid: reason is required (field reason)".
func (r EventResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "event %d %s", r.Index, r.Status)
	if r.Error != nil {
		fmt.Fprintf(&b, ": %s", r.Error.Error())
	} else if r.ID != "" {
		fmt.Fprintf(&b, " (id %s)", r.ID)
	}
	return b.String()
}

// Send sends events in one request (POST /v1/events) and returns once the
// server has made the accepted ones durable.
//
// Before the first attempt, Send gives every event without an ID a fresh
// ULID, writing it into the caller's slice when called as Send(ctx, evs...),
// so automatic retries — and a caller who retries the same slice — are
// answered as duplicates, never stored twice. Events without a Tenant get
// the client's (see WithTenant).
//
// Send retries 429 and 5xx answers and network failures with exponential
// backoff and full jitter, honouring Retry-After (see WithRetry), until ctx
// ends.
//
// Rejections of single events are not an error: see IngestResult.Rejected
// and each EventResult. When the server rejects every event it answers 400;
// Send then returns both the result (with each event's reason) and an
// ErrInvalid (or ErrForbidden, ErrTooLarge) *Error for the first rejection.
func (c *Client) Send(ctx context.Context, events ...Event) (*IngestResult, error) {
	if len(events) == 0 {
		return &IngestResult{Results: []EventResult{}}, nil
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = c.NewID()
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := c.encodeEvent(&buf, events[i]); err != nil {
			return nil, fmt.Errorf("vigil: encode event %d: %w", i, err)
		}
	}
	buf.WriteByte(']')
	return c.sendBatch(ctx, buf.Bytes(), len(events))
}

// encodeEvent appends e's compact JSON to buf, with the client's tenant
// filled in.
func (c *Client) encodeEvent(buf *bytes.Buffer, e Event) error {
	if e.Tenant == "" {
		e.Tenant = c.tenant
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// sendBatch posts an encoded JSON array of n events.
func (c *Client) sendBatch(ctx context.Context, body []byte, n int) (*IngestResult, error) {
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/events", body: body, idempotent: true})
	var apiErr *Error
	switch {
	case err == nil:
		res, derr := decodeIngestResult(resp.body, n)
		if derr != nil {
			return nil, fmt.Errorf("vigil: POST /v1/events: %w", derr)
		}
		return res, nil
	case resp != nil && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest:
		// Every event rejected: the body carries the results too.
		if res, derr := decodeIngestResult(resp.body, n); derr == nil && len(res.Results) > 0 {
			return res, err
		}
	}
	return nil, err
}

// decodeIngestResult decodes and checks an ingest answer for a batch of n
// events: every index within the batch and at most one result per event,
// a known status, an error on each rejection, and counts that agree.
func decodeIngestResult(b []byte, n int) (*IngestResult, error) {
	var res IngestResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("malformed response: %w", err)
	}
	if len(res.Results) > n {
		return nil, fmt.Errorf("malformed response: %d results for %d events", len(res.Results), n)
	}
	seen := make([]bool, n)
	var acc, dup, rej int
	for i, r := range res.Results {
		if r.Index < 0 || r.Index >= n || seen[r.Index] {
			return nil, fmt.Errorf("malformed response: results[%d].index %d is out of range or repeated", i, r.Index)
		}
		seen[r.Index] = true
		switch r.Status {
		case StatusAccepted:
			acc++
		case StatusDuplicate:
			dup++
		case StatusRejected:
			rej++
			if r.Error == nil {
				res.Results[i].Error = &ErrorBody{Code: CodeInvalid, Message: "rejected without a reason"}
			}
		default:
			return nil, fmt.Errorf("malformed response: results[%d].status %q is unknown", i, clean(r.Status))
		}
	}
	if len(res.Results) > 0 && (acc != res.Accepted || dup != res.Duplicates || rej != res.Rejected) {
		return nil, fmt.Errorf("malformed response: counts %d/%d/%d disagree with results %d/%d/%d",
			res.Accepted, res.Duplicates, res.Rejected, acc, dup, rej)
	}
	if res.Accepted < 0 || res.Duplicates < 0 || res.Rejected < 0 || res.Accepted+res.Duplicates+res.Rejected > n {
		return nil, fmt.Errorf("malformed response: counts %d/%d/%d for %d events", res.Accepted, res.Duplicates, res.Rejected, n)
	}
	if res.Results == nil {
		res.Results = []EventResult{}
	}
	return &res, nil
}

// Risk asks for the risk of a login without storing it (POST /v1/risk): e
// is shaped like an auth.login.success event. Risk retries like Send.
func (c *Client) Risk(ctx context.Context, e Event) (*Risk, error) {
	if e.Tenant == "" {
		e.Tenant = c.tenant
	}
	var r Risk
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/risk", idempotent: true}, e, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
