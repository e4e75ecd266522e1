package client

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. An *Error matches the sentinel of its Code with
// errors.Is, e.g. errors.Is(err, client.ErrNotFound).
var (
	// ErrInvalid: the request or an event is malformed (400). Not retryable.
	ErrInvalid = errors.New("vigil: invalid")
	// ErrUnauthenticated: the API key is missing, malformed, unknown or revoked (401).
	ErrUnauthenticated = errors.New("vigil: unauthenticated")
	// ErrForbidden: the key lacks a scope or names another tenant (403).
	ErrForbidden = errors.New("vigil: forbidden")
	// ErrNotFound: no such resource in the caller's tenant (404).
	ErrNotFound = errors.New("vigil: not found")
	// ErrConflict: the resource exists already (409).
	ErrConflict = errors.New("vigil: conflict")
	// ErrTooLarge: the body or one event exceeds its size cap (413, or per event).
	ErrTooLarge = errors.New("vigil: too large")
	// ErrRateLimited: slow down and retry after RetryAfter (429). Retried automatically.
	ErrRateLimited = errors.New("vigil: rate limited")
	// ErrUnavailable: the server cannot take the request now (503). Retried automatically.
	ErrUnavailable = errors.New("vigil: unavailable")
	// ErrInternal: the server failed (500). Retried automatically for idempotent requests.
	ErrInternal = errors.New("vigil: internal error")

	// ErrClosed is returned by Batcher methods after Close.
	ErrClosed = errors.New("vigil: batcher closed")
	// ErrBufferFull is returned by Batcher.Add in non-blocking mode when the buffer is full.
	ErrBufferFull = errors.New("vigil: batcher buffer full")
)

// Error codes of the HTTP API, as found in Error.Code and ErrorBody.Code.
const (
	CodeInvalid         = "invalid"
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "too_large"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// maxMessageBytes caps a server message kept in an Error.
const maxMessageBytes = 1024

// Error is an error answer from the server. Message is the server's
// user-safe explanation; Field, when set, is the dotted path of the
// offending input ("actor.id"); RequestID correlates with the server's logs;
// RetryAfter is the server's Retry-After (429, 503), 0 when absent; Limit,
// on a 429, names the limit that was hit ("tenant_event_rate").
type Error struct {
	StatusCode int
	Code       string
	Message    string
	Field      string
	RequestID  string
	RetryAfter time.Duration
	Limit      string
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vigil: ")
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	var extra []string
	if e.StatusCode != 0 {
		extra = append(extra, "status "+strconv.Itoa(e.StatusCode))
	}
	if e.Field != "" {
		extra = append(extra, "field "+e.Field)
	}
	if e.Limit != "" {
		extra = append(extra, "limit "+e.Limit)
	}
	if e.RequestID != "" {
		extra = append(extra, "request_id "+e.RequestID)
	}
	if len(extra) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(extra, ", "))
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's code. An unknown code
// (from a newer server) falls back to the sentinel of the status code.
func (e *Error) Is(target error) bool {
	s := sentinel(e.Code)
	if s == nil {
		s = sentinel(codeForStatus(e.StatusCode))
	}
	return s != nil && s == target
}

// Temporary reports whether the same request may succeed later (rate
// limited, unavailable or internal).
func (e *Error) Temporary() bool {
	switch e.Code {
	case CodeRateLimited, CodeUnavailable, CodeInternal:
		return true
	}
	return false
}

func sentinel(code string) error {
	switch code {
	case CodeInvalid:
		return ErrInvalid
	case CodeUnauthenticated:
		return ErrUnauthenticated
	case CodeForbidden:
		return ErrForbidden
	case CodeNotFound:
		return ErrNotFound
	case CodeConflict:
		return ErrConflict
	case CodeTooLarge:
		return ErrTooLarge
	case CodeRateLimited:
		return ErrRateLimited
	case CodeUnavailable:
		return ErrUnavailable
	case CodeInternal:
		return ErrInternal
	}
	return nil
}

// codeForStatus maps a status to the API code a body would have carried, for
// answers without one (a proxy's 502 page, say).
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return CodeInvalid
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound, http.StatusGone:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	if status >= 400 && status < 500 {
		return CodeInvalid
	}
	return CodeInternal
}

// ErrorBody is the wire form of an error: the "error" member of an error
// answer, and of a rejected event's result.
type ErrorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message,omitempty"`
	Field     string `json:"field,omitempty"`
	Limit     string `json:"limit,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Err returns the body as an *Error (StatusCode 0: it may describe one event
// of an accepted batch), so errors.Is works on a per-event rejection.
func (b *ErrorBody) Err() *Error {
	e := &Error{Code: b.Code, Message: clean(b.Message), Field: clean(b.Field), RequestID: clean(b.RequestID)}
	if e.Code == "" {
		e.Code = CodeInvalid
	}
	return e
}

// Error implements error, so a rejected event's reason prints as the same
// text its *Error would ("vigil: invalid: reason is required (field reason)").
// A nil body prints as "<nil>".
func (b *ErrorBody) Error() string {
	if b == nil {
		return "<nil>"
	}
	return b.Err().Error()
}

// parseError builds the *Error for a non-2xx answer. It never fails: a body
// that is not the API's error shape still yields the status's code.
func parseError(status int, h http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status, RetryAfter: parseRetryAfter(h.Get("Retry-After"), now)}
	var env struct {
		Error *ErrorBody `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code = clean(env.Error.Code)
		e.Message = clean(env.Error.Message)
		e.Field = clean(env.Error.Field)
		e.Limit = clean(env.Error.Limit)
		e.RequestID = clean(env.Error.RequestID)
	}
	if e.RequestID == "" {
		e.RequestID = clean(h.Get("X-Request-Id"))
	}
	if e.Code == "" {
		e.Code = codeForStatus(status)
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
		if e.Message == "" {
			e.Message = "unexpected status " + strconv.Itoa(status)
		}
	}
	return e
}

// maxRetryAfter bounds a parsed Retry-After so the arithmetic cannot
// overflow; anything this long is longer than any sane maxDelay.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads delay-seconds or an HTTP-date; 0 when absent or
// malformed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}

// clean makes server-supplied text safe to keep in an error: valid UTF-8,
// no control characters (a hostile server cannot forge log lines), capped.
func clean(s string) string {
	ok := len(s) <= maxMessageBytes && utf8.ValidString(s)
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] >= 0x20 && s[i] != 0x7f
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxMessageBytes {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError, r < 0x20, r == 0x7f:
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
