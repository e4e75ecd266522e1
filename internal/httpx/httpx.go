// Package httpx is Vigil's HTTP plumbing: error-returning handlers, the one
// error writer with the code → status table, request ids, access logs,
// metrics and panic recovery, and JSON helpers.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// HandlerFunc is an HTTP handler that returns its error to the error writer
// instead of writing it itself.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// StatusFor maps an error code to its HTTP status. This is the one table;
// docs/api-errors.md is tested against it.
var statusFor = map[string]int{
	audit.EINVALID:         http.StatusBadRequest,
	audit.EUNAUTHENTICATED: http.StatusUnauthorized,
	audit.EFORBIDDEN:       http.StatusForbidden,
	audit.ENOTFOUND:        http.StatusNotFound,
	audit.ECONFLICT:        http.StatusConflict,
	audit.ETOOLARGE:        http.StatusRequestEntityTooLarge,
	audit.ERATELIMITED:     http.StatusTooManyRequests,
	audit.EUNAVAILABLE:     http.StatusServiceUnavailable,
	audit.EINTERNAL:        http.StatusInternalServerError,
}

// Status returns the HTTP status for an error code (500 for unknown codes).
func Status(code string) int {
	if s, ok := statusFor[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Codes returns every error code the table knows.
func Codes() []string {
	out := make([]string, 0, len(statusFor))
	for c := range statusFor {
		out = append(out, c)
	}
	return out
}

// ErrorBody is the error object of every error response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Limit names the limit a rate_limited answer hit (tenant_event_rate,
	// tenant_backlog_share, …); see LimitError.
	Limit string `json:"limit,omitempty"`
	// Problems lists every problem when the input had more than one
	// (field and message then describe the first; message joins them all).
	Problems  []audit.Problem `json:"problems,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
}

// LimitError is a rate_limited (429) answer that names the limit the
// request hit and how long to wait before retrying. audit.ErrorCode reports
// it as ERATELIMITED.
type LimitError struct {
	// Limit is the limit's stable name, such as tenant_event_rate.
	Limit string
	// RetryAfter is when the request may succeed; sent as Retry-After,
	// rounded up to whole seconds and at least 1.
	RetryAfter time.Duration
	// Message is safe to show the caller.
	Message string
}

// Error implements error.
func (e *LimitError) Error() string { return e.Limit + ": " + e.Message }

// Unwrap makes the error an audit rate_limited error.
func (e *LimitError) Unwrap() error {
	return &audit.Error{Code: audit.ERATELIMITED, Message: e.Message}
}

// retryAfterSeconds is the Retry-After value for err.
func retryAfterSeconds(err error) int {
	var le *LimitError
	if errors.As(err, &le) && le.RetryAfter > time.Second {
		return int(math.Ceil(le.RetryAfter.Seconds()))
	}
	return RetryAfter
}

// Body returns the public error body for err: the domain message for an
// *audit.Error, a generic one for anything else.
func Body(err error, requestID string) ErrorBody {
	code := audit.ErrorCode(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code = audit.EUNAVAILABLE
	}
	b := ErrorBody{Code: code, RequestID: requestID, Field: audit.ErrorField(err)}
	if code == audit.EINTERNAL || (code == audit.EUNAVAILABLE && audit.ErrorMessage(err) == "internal error") {
		b.Message = "internal error; quote the request id when reporting it"
		if code == audit.EUNAVAILABLE {
			b.Message = "the server cannot answer right now; retry later"
		}
		b.Field = ""
	} else {
		b.Message = audit.ErrorMessage(err)
		var ae *audit.Error
		if errors.As(err, &ae) && len(ae.Problems) > 1 {
			b.Problems = ae.Problems
		}
	}
	var le *LimitError
	if code == audit.ERATELIMITED && errors.As(err, &le) {
		b.Limit = le.Limit
	}
	return b
}

// RetryAfter is the Retry-After value, in seconds, sent with 429 and 503.
const RetryAfter = 1

// WriteError writes err as a JSON error response and logs it when it is the
// server's fault. Messages of internal errors are never sent to the client.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	id := RequestID(r.Context())
	body := Body(err, id)
	status := Status(body.Code)
	if status >= 500 && log != nil {
		log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("error", err.Error()))
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	WriteJSON(w, status, map[string]any{"error": body})
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

// DecodeJSON decodes a request body of at most max bytes into v, strictly:
// unknown fields and trailing data are EINVALID errors.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return audit.Errorf(audit.ETOOLARGE, "request body is over %d bytes", max)
		}
		return audit.Errorf(audit.EINVALID, "request body is not valid: %s", err.Error())
	}
	if dec.More() {
		return audit.Errorf(audit.EINVALID, "request body has trailing data")
	}
	return nil
}

// Adapt turns a HandlerFunc into an http.Handler using WriteError.
func Adapt(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request id stored in ctx.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// WithRequestID sets X-Request-Id on the response (taking a sane inbound one)
// and stores it in the request context.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func saneID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// StatusRecorder remembers the status and size of a response.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
	Bytes  int64
}

// WriteHeader implements http.ResponseWriter.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.Bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush).
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Recover turns a panic in a handler into a 500 and an error log line.
func Recover(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
						slog.String("request_id", RequestID(r.Context())), slog.Any("panic", v))
					WriteError(w, r, nil, errors.New("panic"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// AccessLog writes one Info line per request: no query strings (they may
// carry customer data) and no headers (they carry keys).
func AccessLog(log *slog.Logger, observe func(method, route string, status int, d time.Duration)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &StatusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			if rec.Status == 0 {
				rec.Status = http.StatusOK
			}
			d := time.Since(start)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if observe != nil {
				observe(r.Method, route, rec.Status, d)
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", RequestID(r.Context())), slog.String("method", r.Method),
				slog.String("route", route), slog.Int("status", rec.Status), slog.Int64("bytes", rec.Bytes),
				slog.Duration("duration", d))
		})
	}
}
