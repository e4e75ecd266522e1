package client

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		want       Error
		wantTarget error
	}{
		{
			name: "api error", status: 400, header: http.Header{"X-Request-Id": {"hdr"}},
			body: `{"error":{"code":"invalid","message":"actor.id is required for auth.login.success","field":"actor.id","request_id":"r1"}}`,
			want: Error{StatusCode: 400, Code: "invalid", Message: "actor.id is required for auth.login.success", Field: "actor.id", RequestID: "r1"}, wantTarget: ErrInvalid,
		},
		{
			name: "rate limited", status: 429, header: http.Header{"Retry-After": {"7"}, "X-Request-Id": {"r2"}},
			body: `{"error":{"code":"rate_limited","message":"slow down","limit":"tenant_event_rate"}}`,
			want: Error{StatusCode: 429, Code: "rate_limited", Message: "slow down", RequestID: "r2", RetryAfter: 7 * time.Second, Limit: "tenant_event_rate"}, wantTarget: ErrRateLimited,
		},
		{
			name: "proxy html", status: 502, body: `<html>bad gateway</html>`,
			want: Error{StatusCode: 502, Code: "unavailable", Message: "bad gateway"}, wantTarget: ErrUnavailable,
		},
		{
			name: "empty 404", status: 404,
			want: Error{StatusCode: 404, Code: "not_found", Message: "not found"}, wantTarget: ErrNotFound,
		},
		{
			name: "unknown code falls back to status", status: 403, body: `{"error":{"code":"quota_exceeded","message":"plan limit"}}`,
			want: Error{StatusCode: 403, Code: "quota_exceeded", Message: "plan limit"}, wantTarget: ErrForbidden,
		},
		{
			name: "control characters scrubbed", status: 500, body: `{"error":{"code":"internal","message":"a\nforged=1"}}`,
			want: Error{StatusCode: 500, Code: "internal", Message: "a forged=1"}, wantTarget: ErrInternal,
		},
		{
			name: "odd status", status: 599, body: `null`,
			want: Error{StatusCode: 599, Code: "internal", Message: "unexpected status 599"}, wantTarget: ErrInternal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := parseError(tt.status, h, []byte(tt.body), now)
			if *got != tt.want {
				t.Errorf("parseError = %+v\nwant         %+v", *got, tt.want)
			}
			if !errors.Is(got, tt.wantTarget) {
				t.Errorf("errors.Is(%v, %v) = false", got, tt.wantTarget)
			}
			checkError(t, got, tt.status)
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{StatusCode: 400, Code: "invalid", Message: "actor.id is required", Field: "actor.id", RequestID: "r1"}
	if got, want := e.Error(), "vigil: invalid: actor.id is required (status 400, field actor.id, request_id r1)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Is(e, ErrNotFound) || !errors.Is(e, ErrInvalid) {
		t.Error("Is matches the wrong sentinel")
	}
}

func TestParseRetryAfter(t *testing.T) {
	check := func(in string, want time.Duration) {
		t.Helper()
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
	check("", 0)
	check("0", 0)
	check(" 3 ", 3*time.Second)
	check("-1", 0)
	check("1.5", 0)
	check("99999999999999999999", maxRetryAfter)
	check("86401", maxRetryAfter)
	check(now.Add(90*time.Second).Format(http.TimeFormat), 90*time.Second)
	check(now.Add(-time.Hour).Format(http.TimeFormat), 0)
	check("Sun, 06 Nov 1994 08:49:37 GMT", 0)
	check("soon", 0)
}

func TestDecodeIngestResult(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		n       int
		wantErr string
	}{
		{name: "contract example", n: 3, body: `{"accepted":1,"duplicates":1,"rejected":1,"results":[{"index":0,"status":"accepted","id":"01J"},
			{"index":1,"status":"duplicate","id":"abc"},{"index":2,"status":"rejected","error":{"code":"invalid","field":"actor.id","message":"m"}}]}`},
		{name: "counts only", n: 2, body: `{"accepted":2}`},
		{name: "index out of range", n: 1, body: `{"accepted":1,"results":[{"index":1,"status":"accepted"}]}`, wantErr: "out of range"},
		{name: "index repeated", n: 2, body: `{"accepted":2,"results":[{"index":0,"status":"accepted"},{"index":0,"status":"accepted"}]}`, wantErr: "repeated"},
		{name: "unknown status", n: 1, body: `{"results":[{"index":0,"status":"maybe"}]}`, wantErr: "unknown"},
		{name: "counts disagree", n: 1, body: `{"accepted":0,"rejected":1,"results":[{"index":0,"status":"accepted"}]}`, wantErr: "disagree"},
		{name: "too many", n: 1, body: `{"accepted":2}`, wantErr: "for 1 events"},
		{name: "not json", n: 1, body: `<html>`, wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := decodeIngestResult([]byte(tt.body), tt.n)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkIngestResult(t, res, tt.n)
		})
	}
}

// FuzzDecodeResponse feeds arbitrary answers to the response decoders and
// checks their invariants: an *Error always has the status, a known or
// server-given code, a bounded non-negative Retry-After and clean text; an
// accepted ingest result only ever points at events of the batch and
// survives a JSON round trip.
func FuzzDecodeResponse(f *testing.F) {
	seeds := []string{
		`{"error":{"code":"invalid","message":"actor.id is required","field":"actor.id","request_id":"r1"}}`,
		`{"accepted":1,"duplicates":1,"rejected":1,"results":[{"index":0,"status":"accepted","id":"01J"},{"index":1,"status":"duplicate","id":"abc"},{"index":2,"status":"rejected","error":{"code":"invalid","field":"actor.id","message":"m"}}]}`,
		`{"accepted":0,"rejected":1,"results":[{"index":0,"status":"rejected"}],"error":{"code":"forbidden"}}`,
		`{"accepted":2}`, `<html>`, `null`, `[]`, `{"error":null}`, `{"error":{"code":"a\u0000b"}}`,
	}
	for i, s := range seeds {
		f.Add(400+i, "3", []byte(s), uint8(3))
	}
	f.Add(503, "Wed, 21 Oct 2026 07:28:00 GMT", []byte(`{}`), uint8(1))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte, n uint8) {
		if len(body) > 1<<16 {
			return
		}
		e := parseError(status, http.Header{"Retry-After": {retryAfter}}, body, now)
		checkError(t, e, status)
		if res, err := decodeIngestResult(body, int(n)); err == nil {
			checkIngestResult(t, res, int(n))
		}
	})
}

func checkError(t *testing.T, e *Error, status int) {
	t.Helper()
	if e.StatusCode != status || e.Code == "" {
		t.Fatalf("error %+v lacks status %d or code", e, status)
	}
	if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
		t.Fatalf("RetryAfter %s out of bounds", e.RetryAfter)
	}
	if sentinel(e.Code) == nil && !errors.Is(e, sentinel(codeForStatus(status))) {
		t.Fatalf("unknown code %q does not fall back to the status's sentinel", e.Code)
	}
	for _, s := range []string{e.Code, e.Message, e.Field, e.RequestID} {
		if !utf8.ValidString(s) || len(s) > maxMessageBytes+len("…")+3 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("unclean text %q", s)
		}
	}
	_ = e.Error()
}

func checkIngestResult(t *testing.T, res *IngestResult, n int) {
	t.Helper()
	seen := map[int]bool{}
	for _, r := range res.Results {
		if r.Index < 0 || r.Index >= n || seen[r.Index] {
			t.Fatalf("result index %d for %d events (or repeated)", r.Index, n)
		}
		seen[r.Index] = true
		if r.Status == StatusRejected && (r.Error == nil || r.Error.Err().Code == "") {
			t.Fatalf("rejection without an error: %+v", r)
		}
	}
	if res.Accepted+res.Duplicates+res.Rejected > n || res.Accepted < 0 || res.Duplicates < 0 || res.Rejected < 0 {
		t.Fatalf("counts %+v for %d events", res, n)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decodeIngestResult(b, n)
	if err != nil || !reflect.DeepEqual(again, res) {
		t.Fatalf("round trip: %+v, %v; want %+v", again, err, res)
	}
}

func TestULID(t *testing.T) {
	// The ULID spec's example time prefix, with a zero random part.
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], 1469922850259<<16)
	if got, want := encodeULID(&b), "01ARZ3NDEK0000000000000000"; got != want {
		t.Errorf("encodeULID = %s, want %s", got, want)
	}
	for i := range b {
		b[i] = 0xff
	}
	if got, want := encodeULID(&b), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"; got != want {
		t.Errorf("encodeULID(max) = %s, want %s", got, want)
	}

	var g idGenerator
	at := time.UnixMilli(1469922850259)
	prev := ""
	for i := range 1000 {
		when := at
		if i == 500 {
			when = at.Add(-time.Hour) // the clock steps back
		}
		id := g.newID(when)
		if len(id) != 26 || strings.Trim(id, ulidAlphabet) != "" {
			t.Fatalf("id %q is not a ULID", id)
		}
		if id <= prev {
			t.Fatalf("id %d %s not after %s", i, id, prev)
		}
		if !strings.HasPrefix(id, "01ARZ3NDEK") {
			t.Fatalf("id %s lost its time prefix", id)
		}
		prev = id
	}
	if id := g.newID(at.Add(time.Millisecond)); id[:10] != "01ARZ3NDEM" {
		t.Errorf("next millisecond id %s", id)
	}
}

func TestIncrementOverflow(t *testing.T) {
	var g idGenerator
	at := time.UnixMilli(1469922850259)
	g.newID(at)
	for i := range g.rnd {
		g.rnd[i] = 0xff
	}
	id := g.newID(at)
	if id[:10] != "01ARZ3NDEM" || id[10:] != "0000000000000000" {
		t.Errorf("overflowing id = %s, want the next millisecond", id)
	}
}
