package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil/client"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		opts    []client.Option
		wantErr string
	}{
		{name: "plain", url: "http://127.0.0.1:8080"},
		{name: "prefix and slash", url: "https://vigil.example.com/vigil/"},
		{name: "no scheme", url: "vigil.example.com", wantErr: "want http(s)://"},
		{name: "ftp", url: "ftp://x", wantErr: "want http(s)://"},
		{name: "credentials", url: "https://u:p@x", wantErr: "must not carry credentials"},
		{name: "query", url: "https://x/?a=b", wantErr: "query or fragment"},
		{name: "bad key", url: "https://x", opts: []client.Option{client.WithAPIKey("vgl_a b")}, wantErr: "api key"},
		{name: "nil http client", url: "https://x", opts: []client.Option{client.WithHTTPClient(nil)}, wantErr: "http client is nil"},
		{name: "zero attempts", url: "https://x", opts: []client.Option{client.WithRetry(0, time.Second, time.Second)}, wantErr: "at least 1"},
		{name: "base above max", url: "https://x", opts: []client.Option{client.WithRetry(3, time.Minute, time.Second)}, wantErr: "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.New(tt.url, tt.opts...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("New: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestSendAssignsIDsAndTenant(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s, client.WithTenant("globex"))
	evs := []client.Event{loginFailure("alice", t0), loginFailure("bob", t0), loginFailure("carol", t0)}
	evs[1].ID = "mine-1"
	res, err := c.Send(t.Context(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 3 || res.Rejected != 0 || len(res.Results) != 3 {
		t.Fatalf("result = %+v", res)
	}
	if evs[1].ID != "mine-1" {
		t.Errorf("caller's id replaced: %q", evs[1].ID)
	}
	for i, e := range evs {
		if len(e.ID) == 0 || res.Results[i].ID != e.ID {
			t.Errorf("event %d: id %q, result id %q", i, e.ID, res.Results[i].ID)
		}
	}
	if len(evs[0].ID) != 26 || evs[0].ID >= evs[2].ID {
		t.Errorf("generated ids %q, %q: want increasing 26-char ULIDs", evs[0].ID, evs[2].ID)
	}
	got, err := c.GetEvent(t.Context(), evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "globex" || !got.Time.Equal(t0) || got.Context.IP != "203.0.113.7" {
		t.Errorf("stored event = %+v", got)
	}
}

func TestSendNothing(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	res, err := c.Send(t.Context())
	if err != nil || res.Accepted != 0 || s.count("POST /v1/events") != 0 {
		t.Fatalf("Send() = %+v, %v; requests %d", res, err, s.count("POST /v1/events"))
	}
}

func TestSendMixedBatch(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	evs := []client.Event{loginFailure("alice", t0), loginFailure("", t0), loginFailure("carol", t0)}
	evs[2].ID = "dup"
	if _, err := c.Send(t.Context(), client.Event{ID: "dup", Action: "x.y", Actor: client.Actor{ID: "z"}}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(t.Context(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	want := &client.IngestResult{Accepted: 1, Duplicates: 1, Rejected: 1, Results: []client.EventResult{
		{Index: 0, Status: client.StatusAccepted, ID: evs[0].ID},
		{Index: 1, Status: client.StatusRejected, Error: &client.ErrorBody{Code: "invalid", Field: "actor.id", Message: "actor.id is required for auth.login.failure"}},
		{Index: 2, Status: client.StatusDuplicate, ID: "dup"},
	}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if err := res.Results[1].Error.Err(); !errors.Is(err, client.ErrInvalid) || err.Field != "actor.id" {
		t.Errorf("rejection as error = %v", err)
	}
}

func TestSendAllRejected(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	res, err := c.Send(t.Context(), loginFailure("", t0), loginFailure("", t0))
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("err = %v, want an ErrInvalid *Error", err)
	}
	if apiErr.StatusCode != 400 || apiErr.Field != "actor.id" || apiErr.RequestID == "" {
		t.Errorf("error = %+v", apiErr)
	}
	if res == nil || res.Rejected != 2 || len(res.Results) != 2 || res.Results[1].Error.Field != "actor.id" {
		t.Fatalf("result = %+v, want both rejections", res)
	}
	if n := s.count("POST /v1/events"); n != 1 {
		t.Errorf("%d requests, want 1 (400 is not retried)", n)
	}
}

// TestSendRetries checks that transient failures are retried with the
// same ids, that waits honour Retry-After or follow capped exponential
// backoff, and that the events are stored exactly once.
func TestSendRetries(t *testing.T) {
	tests := []struct {
		name       string
		fault      func(t *testing.T, s *fakeServer, w http.ResponseWriter, r *http.Request, n int) bool
		wantDelays []time.Duration
	}{
		{
			name: "429 with Retry-After seconds",
			fault: func(t *testing.T, s *fakeServer, w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					replyError(w, 429, "rate_limited", "1")
					return true
				}
				return false
			},
			wantDelays: []time.Duration{time.Second},
		},
		{
			name: "503 then 500 then 502, exponential backoff",
			fault: func(t *testing.T, s *fakeServer, w http.ResponseWriter, r *http.Request, n int) bool {
				switch n {
				case 1:
					replyError(w, 503, "unavailable", "")
				case 2:
					replyError(w, 500, "internal", "")
				case 3:
					w.WriteHeader(http.StatusBadGateway) // a proxy's answer, no JSON
				default:
					return false
				}
				return true
			},
			wantDelays: []time.Duration{100*time.Millisecond - 1, 200*time.Millisecond - 1, 400*time.Millisecond - 1},
		},
		{
			name: "dropped connection after the server stored the events",
			fault: func(t *testing.T, s *fakeServer, w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					s.ingest(&discardWriter{h: http.Header{}}, r, "lost") // durable, but the answer is lost
					dropConn(t, w, r)
					return true
				}
				return false
			},
			wantDelays: []time.Duration{100*time.Millisecond - 1},
		},
		{
			name: "dropped connection before storing",
			fault: func(t *testing.T, s *fakeServer, w http.ResponseWriter, r *http.Request, n int) bool {
				if n <= 2 {
					dropConn(t, w, r)
					return true
				}
				return false
			},
			wantDelays: []time.Duration{100*time.Millisecond - 1, 200*time.Millisecond - 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
				return tt.fault(t, s, w, r, n)
			})
			c, rec := newClient(t, s)
			evs := []client.Event{loginFailure("alice", t0), loginFailure("bob", t0)}
			res, err := c.Send(t.Context(), evs...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantDelays, rec.get()); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
			for i, ids := range s.attemptIDs() {
				if !slices.Equal(ids, []string{evs[0].ID, evs[1].ID}) {
					t.Errorf("attempt %d sent ids %v, want %v", i, ids, []string{evs[0].ID, evs[1].ID})
				}
			}
			if n := s.storedCount(); n != 2 {
				t.Errorf("stored %d events, want exactly 2", n)
			}
			if res.Accepted+res.Duplicates != 2 {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

// discardWriter swallows an answer that the test then loses on purpose.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func TestRetryGivesUp(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		code         string
		retryAfter   string
		wantAttempts int
		wantErr      error
	}{
		{name: "attempts exhausted", status: 503, code: "unavailable", wantAttempts: 5, wantErr: client.ErrUnavailable},
		{name: "Retry-After beyond max delay", status: 429, code: "rate_limited", retryAfter: "120", wantAttempts: 1, wantErr: client.ErrRateLimited},
		{name: "unauthenticated is final", status: 401, code: "unauthenticated", wantAttempts: 1, wantErr: client.ErrUnauthenticated},
		{name: "forbidden is final", status: 403, code: "forbidden", wantAttempts: 1, wantErr: client.ErrForbidden},
		{name: "too large is final", status: 413, code: "too_large", wantAttempts: 1, wantErr: client.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
				replyError(w, tt.status, tt.code, tt.retryAfter)
				return true
			})
			var logs bytes.Buffer
			c, _ := newClient(t, s, client.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			_, err := c.Send(t.Context(), loginFailure("alice", t0))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := s.count("POST /v1/events"); n != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", n, tt.wantAttempts)
			}
			var apiErr *client.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.RequestID == "" {
				t.Errorf("error = %#v", apiErr)
			}
			if tt.retryAfter != "" && apiErr.RetryAfter != 2*time.Minute {
				t.Errorf("RetryAfter = %s, want 2m", apiErr.RetryAfter)
			}
			for _, leak := range []string{testKey, "s3cretvalue"} {
				if strings.Contains(err.Error(), leak) || strings.Contains(logs.String(), leak) {
					t.Errorf("api key leaked into error or log: %v\n%s", err, logs.String())
				}
			}
		})
	}
}

func TestRetryStopsAtDeadline(t *testing.T) {
	s := newFakeServer(t)
	s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		replyError(w, 503, "unavailable", "2") // within max delay, beyond the deadline
		return true
	})
	c, rec := newClient(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := c.Send(ctx, loginFailure("alice", t0))
	if !errors.Is(err, client.ErrUnavailable) || len(rec.get()) != 0 {
		t.Fatalf("err = %v, sleeps %v: want an immediate ErrUnavailable", err, rec.get())
	}
}

func TestRetryCancelled(t *testing.T) {
	s := newFakeServer(t)
	s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		replyError(w, 503, "unavailable", "")
		return true
	})
	ctx, cancel := context.WithCancel(t.Context())
	c, err := client.New(s.URL, client.WithAPIKey(testKey), client.WithSleep(func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(ctx, loginFailure("alice", t0))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestNonIdempotentRetries checks that creating keys is retried on 429
// (the server did nothing) but not after a 500 or a dropped connection,
// which could mint a second key.
func TestNonIdempotentRetries(t *testing.T) {
	tests := []struct {
		name         string
		fault        func(t *testing.T, w http.ResponseWriter, r *http.Request)
		wantAttempts int
		wantErr      bool
	}{
		{name: "429 retried", fault: func(t *testing.T, w http.ResponseWriter, r *http.Request) { replyError(w, 429, "rate_limited", "1") }, wantAttempts: 2},
		{name: "500 not retried", fault: func(t *testing.T, w http.ResponseWriter, r *http.Request) { replyError(w, 500, "internal", "") }, wantAttempts: 1, wantErr: true},
		{name: "drop not retried", fault: dropConn, wantAttempts: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					tt.fault(t, w, r)
					return true
				}
				return false
			})
			c, _ := newClient(t, s)
			_, err := c.CreateKey(t.Context(), client.CreateKeyRequest{Name: "ci", Scopes: []string{client.ScopeEventsWrite}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("CreateKey err = %v, want error %v", err, tt.wantErr)
			}
			if n := s.count("POST /v1/keys"); n != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", n, tt.wantAttempts)
			}
		})
	}
}
