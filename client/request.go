package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Response size caps. A page of 1000 events of at most 32 KiB each plus
// enrichment fits well within maxResponseBytes.
const (
	maxResponseBytes = 64 << 20
	maxErrorBytes    = 64 << 10
)

// call describes one API request.
type call struct {
	method, path string
	query        url.Values
	body         []byte // sent as application/json unless contentType says otherwise
	contentType  string
	noAuth       bool
	// idempotent marks requests that are safe to repeat after any failure,
	// including a lost response: reads, deletes, PATCH to a state, and
	// POST /v1/events with ids assigned. Other requests are retried only on
	// 429 and 503, which the server answers before doing anything.
	idempotent bool
	noRetry    bool
	header     http.Header // extra request headers
}

// response is a complete HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do performs k with retries. On a non-2xx answer it returns an *Error
// together with the response, whose body some callers still decode.
func (c *Client) do(ctx context.Context, k call) (*response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := c.once(ctx, k)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("vigil: %s %s: %w", k.method, k.path, context.Cause(ctx))
		}
		if k.noRetry || attempt >= c.maxAttempts || !retryable(k, err) {
			return resp, giveUp(k, attempt, err)
		}
		d := c.backoff(attempt, err)
		if d > c.maxDelay {
			return resp, giveUp(k, attempt, err) // the server asked for longer than we may wait
		}
		if dl, ok := ctx.Deadline(); ok && c.now().Add(d).After(dl) {
			return resp, giveUp(k, attempt, err) // waiting would outlive the caller
		}
		if c.log.Enabled(ctx, slog.LevelWarn) {
			c.log.LogAttrs(ctx, slog.LevelWarn, "vigil request retry",
				slog.String("method", k.method), slog.String("path", k.path),
				slog.Int("attempt", attempt), slog.Duration("delay", d),
				slog.String("request_id", requestID(err)), slog.String("error", err.Error()))
		}
		if err := c.sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("vigil: %s %s: %w", k.method, k.path, err)
		}
	}
}

func giveUp(k call, attempts int, err error) error {
	var e *Error
	if errors.As(err, &e) && attempts == 1 {
		return e
	}
	if attempts == 1 {
		return fmt.Errorf("vigil: %s %s: %w", k.method, k.path, err)
	}
	return fmt.Errorf("vigil: %s %s: gave up after %d attempts: %w", k.method, k.path, attempts, err)
}

func requestID(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.RequestID
	}
	return ""
}

// retryable reports whether another attempt of k may succeed and cannot do
// harm: 429 and 503 always (the server did nothing), other 5xx and network
// failures only for idempotent requests.
func retryable(k call, err error) bool {
	var e *Error
	if errors.As(err, &e) {
		switch e.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return true
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
			return k.idempotent
		}
		return false
	}
	return k.idempotent
}

// backoff returns the wait before attempt+1: the server's Retry-After when it
// gave one, otherwise full jitter over an exponentially growing ceiling.
func (c *Client) backoff(attempt int, err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter
	}
	ceil := c.maxDelay
	if shift := attempt - 1; shift < 40 {
		if d := c.baseDelay << shift; d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(c.jitter(int64(ceil)))
}

// once performs one attempt of k.
func (c *Client) once(ctx context.Context, k call) (*response, error) {
	u := *c.base
	// k.path is already escaped (ids go through url.PathEscape), so an id
	// holding "/" or "%" stays one path segment.
	u.RawPath = c.base.EscapedPath() + k.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, err
	}
	u.Path = p
	u.RawQuery = k.query.Encode()
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if k.body != nil {
		ct := k.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, vs := range k.header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" && !k.noAuth {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	hr, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	limit := int64(maxResponseBytes)
	if hr.StatusCode >= 300 {
		limit = maxErrorBytes
	}
	b, err := io.ReadAll(io.LimitReader(hr.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	resp := &response{status: hr.StatusCode, header: hr.Header, body: b}
	if hr.StatusCode < 200 || hr.StatusCode > 299 {
		return resp, parseError(hr.StatusCode, hr.Header, b, c.now())
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response body exceeds %d bytes", limit)
	}
	return resp, nil
}

// getJSON performs an idempotent GET and decodes the 200 answer into out.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, call{method: http.MethodGet, path: path, query: q, idempotent: true})
	if err != nil {
		return err
	}
	return decodeBody("GET "+path, resp.body, out)
}

// sendJSON marshals in, performs the request and decodes the answer into out
// (unless out is nil).
func (c *Client) sendJSON(ctx context.Context, k call, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("vigil: %s %s: encode request: %w", k.method, k.path, err)
	}
	k.body = b
	resp, err := c.do(ctx, k)
	if err != nil || out == nil {
		return err
	}
	return decodeBody(k.method+" "+k.path, resp.body, out)
}

func decodeBody(what string, b []byte, out any) error {
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("vigil: %s: malformed response: %w", what, err)
	}
	return nil
}

// scope returns q (allocating it when nil) with the client's tenant set.
func (c *Client) scope(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if c.tenant != "" {
		q.Set("tenant", c.tenant)
	}
	return q
}
