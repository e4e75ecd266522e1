package ingest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
)

const good = `{"action":"auth.login.failure","actor":{"id":"alice@example.com"},"context":{"ip":"203.0.113.7"},"reason":"invalid_password","time":"2026-11-25T10:00:00Z","metadata":{"attempt":3}}`

func TestDecodeShapes(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		format ingest.Format
		n      int
	}{
		{"object", good, ingest.FormatJSON, 1},
		{"object with whitespace", "\n  " + good + "\n", ingest.FormatJSON, 1},
		{"array", "[" + good + "," + good + "]", ingest.FormatJSON, 2},
		{"ndjson", good + "\n\n" + good + "\r\n" + good, ingest.FormatNDJSON, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := ingest.Decode([]byte(tt.body), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tt.n {
				t.Fatalf("got %d items, want %d", len(items), tt.n)
			}
			for i, it := range items {
				if it.Err != nil || it.Index != i {
					t.Fatalf("item %d: %+v", i, it)
				}
				if it.Event.Context.IP.String() != "203.0.113.7" || it.Event.Metadata["attempt"] != 3.0 {
					t.Fatalf("decoded wrongly: %+v", it.Event)
				}
			}
		})
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	tests := []struct {
		name, body string
		format     ingest.Format
		want       string
	}{
		{"empty", "", ingest.FormatJSON, "empty"},
		{"garbage", "hello", ingest.FormatJSON, "must be a JSON object"},
		{"broken object", `{"action":`, ingest.FormatJSON, "not valid JSON"},
		{"broken array", `[{"action":"a.b"},`, ingest.FormatJSON, "line 1"},
		{"empty array", `[]`, ingest.FormatJSON, "empty array"},
		{"array of numbers", `[1,2]`, ingest.FormatJSON, ""},
		{"empty ndjson", "\n\n", ingest.FormatNDJSON, "no events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := ingest.Decode([]byte(tt.body), tt.format)
			if tt.want == "" {
				// Not a body error: every item must carry its own error instead.
				if err != nil {
					t.Fatalf("unexpected body error %v", err)
				}
				for _, it := range items {
					if it.Err == nil {
						t.Fatalf("item %d decoded without error", it.Index)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("code = %s", audit.ErrorCode(err))
			}
		})
	}
}

func TestDecodeTooManyEvents(t *testing.T) {
	body := "[" + strings.Repeat(`{"action":"a.b"},`, ingest.MaxBatch) + `{"action":"a.b"}]`
	if _, err := ingest.Decode([]byte(body), ingest.FormatJSON); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeEventFieldErrors(t *testing.T) {
	big := strings.Repeat("x", audit.MaxEventBytes)
	tests := []struct {
		name, raw, field, code string
	}{
		{"unknown top-level", `{"action":"a.b","colour":"red"}`, "colour", audit.EINVALID},
		{"unknown nested", `{"action":"a.b","actor":{"id":"x","shoe":1}}`, "shoe", audit.EINVALID},
		{"wrong type", `{"action":"a.b","actor":{"id":42}}`, "actor.id", audit.EINVALID},
		{"actor not object", `{"action":"a.b","actor":"bob"}`, "actor", audit.EINVALID},
		{"bad ip", `{"action":"a.b","context":{"ip":"300.1.1.1"}}`, "context.ip", audit.EINVALID},
		{"bad time", `{"action":"a.b","time":"yesterday"}`, "time", audit.EINVALID},
		{"numeric time", `{"action":"a.b","time":1700000000}`, "time", audit.EINVALID},
		{"metadata array", `{"action":"a.b","metadata":[1]}`, "metadata", audit.EINVALID},
		{"metadata big", `{"action":"a.b","metadata":{"x":"` + strings.Repeat("y", audit.MaxMetadataBytes) + `"}}`, "metadata", audit.ETOOLARGE},
		{"event big", `{"action":"a.b","reason":"` + big + `"}`, "", audit.ETOOLARGE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.DecodeEvent([]byte(tt.raw))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := audit.ErrorField(err); got != tt.field {
				t.Fatalf("field = %q, want %q (%v)", got, tt.field, err)
			}
			if got := audit.ErrorCode(err); got != tt.code {
				t.Fatalf("code = %q, want %q (%v)", got, tt.code, err)
			}
		})
	}
}

// FuzzDecode checks the ingest decoder's invariants on arbitrary bodies: it
// never panics; a body error comes with no items; every item has either an
// event or an error, with indexes in order; every decoded event re-encodes
// and decodes to the same action, actor and IP.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(good), false)
	f.Add([]byte("["+good+`,{"action":1}]`), false)
	f.Add([]byte(good+"\n{\n"+good), true)
	f.Add([]byte(`{"action":"a.b","context":{"ip":"::ffff:1.2.3.4%eth0"},"metadata":{"a":{"b":[1,{"c":null}]}}}`), false)
	f.Add([]byte(`{"action":"a.b","time":"2026-11-25T10:00:00.123456789+05:30"}`), false)
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		if len(body) > 1<<20 {
			t.Skip()
		}
		formats := []ingest.Format{ingest.FormatJSON, ingest.FormatSniff}
		if ndjson {
			formats = []ingest.Format{ingest.FormatNDJSON}
		}
		for _, format := range formats {
			checkDecode(t, body, format)
		}
	})
}

// checkDecode checks Decode's invariants on one body, and that reading the
// body in small chunks decodes it the same way.
func checkDecode(t *testing.T, body []byte, format ingest.Format) {
	t.Helper()
	items, err := ingest.Decode(body, format)
	chunked, cerr := ingest.DecodeReader(&onceReader{b: body, chunk: 7}, format, nil)
	if fmt.Sprint(err) != fmt.Sprint(cerr) || len(items) != len(chunked) {
		t.Fatalf("whole: %d items, %v; in chunks: %d items, %v", len(items), err, len(chunked), cerr)
	}
	for i := range items {
		if fmt.Sprint(items[i].Err) != fmt.Sprint(chunked[i].Err) {
			t.Fatalf("item %d: whole %v, in chunks %v", i, items[i].Err, chunked[i].Err)
		}
	}
	if err != nil {
		if items != nil {
			t.Fatal("body error with items")
		}
		if audit.ErrorCode(err) != audit.EINVALID {
			t.Fatalf("body error code %q", audit.ErrorCode(err))
		}
		return
	}
	for i, it := range items {
		if it.Index != i {
			t.Fatalf("item %d has index %d", i, it.Index)
		}
		if it.Err == nil && it.Event == nil || it.Event != nil && it.Err != nil && audit.ErrorCode(it.Err) != audit.EINVALID {
			t.Fatalf("item %d: event %v err %v", i, it.Event, it.Err)
		}
		if it.Err != nil {
			if c := audit.ErrorCode(it.Err); c != audit.EINVALID && c != audit.ETOOLARGE {
				t.Fatalf("item error code %q: %v", c, it.Err)
			}
			continue
		}
		raw, err := json.Marshal(wire(it.Event))
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := ingest.DecodeEvent(raw)
		if err != nil {
			if audit.ErrorCode(err) == audit.ETOOLARGE {
				continue // re-encoding may escape characters and grow
			}
			t.Fatalf("re-decode %s: %v", raw, err)
		}
		if back.Action != it.Event.Action || back.Actor != it.Event.Actor || back.Context.IP != it.Event.Context.IP {
			t.Fatalf("round trip changed the event: %+v vs %+v", back, it.Event)
		}
	}
}

// wire re-encodes a decoded event in the wire form.
func wire(e *audit.Event) map[string]any {
	m := map[string]any{"action": e.Action, "actor": e.Actor}
	if e.Context.IP.IsValid() {
		m["context"] = map[string]any{"ip": e.Context.IP.String()}
	}
	return m
}

func ExampleDecode() {
	items, _ := ingest.Decode([]byte(`[{"action":"auth.logout","actor":{"id":"u1"}},{"action":"auth.logout","actor":{"id":7}}]`), ingest.FormatJSON)
	for _, it := range items {
		fmt.Println(it.Index, it.Err)
	}
	// Output:
	// 0 <nil>
	// 1 actor.id must be a string, not a JSON number
}
