package ingest_test

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
)

// repeatReader yields unit n times without holding the result, counting
// the bytes it has handed out.
type repeatReader struct {
	unit string
	n    int
	off  int // into the current unit
	read int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	w := 0
	for w < len(p) && r.n > 0 {
		c := copy(p[w:], r.unit[r.off:])
		w += c
		r.off += c
		if r.off == len(r.unit) {
			r.off = 0
			r.n--
		}
	}
	r.read += int64(w)
	if w == 0 {
		return 0, io.EOF
	}
	return w, nil
}

// TestDecodeStopsAtMaxBatch is the 5.2-million-{} body: the decoder must
// reject it at event MaxBatch+1 without reading (or allocating for) the
// rest. Before streaming, the whole array was parsed first: 15 MiB read
// and hundreds of MB allocated.
func TestDecodeStopsAtMaxBatch(t *testing.T) {
	for _, f := range []struct {
		name   string
		format ingest.Format
		unit   string
	}{
		{"array", ingest.FormatJSON, "{},"},
		{"ndjson", ingest.FormatNDJSON, "{}\n"},
		{"sniffed objects", ingest.FormatSniff, "{} "},
	} {
		t.Run(f.name, func(t *testing.T) {
			body := &repeatReader{unit: f.unit, n: 5_200_000}
			r := io.Reader(body)
			if f.format == ingest.FormatJSON {
				r = io.MultiReader(strings.NewReader("["), body, strings.NewReader("{}]"))
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			items, err := ingest.DecodeReader(r, f.format, nil)
			runtime.ReadMemStats(&after)
			if err == nil || audit.ErrorCode(err) != audit.EINVALID || !strings.Contains(err.Error(), "at most 10000") {
				t.Fatalf("err = %v (%d items)", err, len(items))
			}
			// At most the events allowed plus one read buffer.
			if limit := int64(ingest.MaxBatch+1)*int64(len(f.unit)) + 64<<10; body.read > limit {
				t.Fatalf("read %d bytes of the body; want at most %d", body.read, limit)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Fatalf("allocated %d MiB to reject the body", alloc>>20)
			}
		})
	}
}

// TestDecodeAllocationsPerEvent bounds what a valid body costs: the raw
// body is never held whole, so a 1,000-event body allocates well under
// twice its decoded size plus a fixed read buffer.
func TestDecodeAllocationsPerEvent(t *testing.T) {
	body := benchBody(1000)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := ingest.DecodeReader(&onceReader{b: body}, ingest.FormatNDJSON, nil); err != nil {
			t.Fatal(err)
		}
	})
	// Each event decodes into about a dozen allocations (strings, metadata
	// map); the body adds a constant handful, not one per byte or chunk.
	if per := allocs / 1000; per > 20 {
		t.Fatalf("%.1f allocations per event", per)
	}
}

// onceReader hands out b in small chunks (1400 bytes unless chunk says),
// as a network connection would.
type onceReader struct {
	b     []byte
	chunk int
}

func (r *onceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	chunk := r.chunk
	if chunk == 0 {
		chunk = 1400
	}
	n := copy(p[:min(len(p), chunk)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestDecodeStreamShapes(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		format ingest.Format
		n      int
		errHas string
	}{
		{"sniffed array", "[" + good + "," + good + "]", ingest.FormatSniff, 2, ""},
		{"sniffed object", "\n" + good + "\n", ingest.FormatSniff, 1, ""},
		{"sniffed pretty object", "{\n  \"action\": \"auth.logout\",\n  \"actor\": {\"id\": \"u\"}\n}\n", ingest.FormatSniff, 1, ""},
		{"sniffed ndjson", good + "\n" + good + "\n" + good, ingest.FormatSniff, 3, ""},
		{"sniffed form", "action=auth.logout", ingest.FormatSniff, 0, "must be a JSON object"},
		{"json trailing object", good + "\n" + good, ingest.FormatJSON, 0, "data after the event"},
		{"array trailing garbage", "[" + good + "] x", ingest.FormatJSON, 0, "data after the top-level value"},
		{"array missing comma", "[" + good + " " + good + "]", ingest.FormatJSON, 0, "expected ',' or ']' after event 0 at line 1"},
		{"array trailing comma", "[" + good + ",]", ingest.FormatJSON, 0, "missing after ','"},
		{"array mismatched bracket", `[{"action":"a.b"]]`, ingest.FormatJSON, 0, "unexpected ']'"},
		{"array truncated", "[" + good + ",\n" + good, ingest.FormatJSON, 0, "unexpected end of input at line 2"},
		{"array broken event", `[{"action":"a.b"},{"action":tru}]`, ingest.FormatJSON, 0, "event 1 is not valid JSON"},
		{"array deep nesting", "[" + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + "]", ingest.FormatJSON, 0, "nested more than"},
		{"array of scalars", `[1, "x", true, null]`, ingest.FormatJSON, 4, ""},
		{"array with bad scalar", `[1x]`, ingest.FormatJSON, 0, "not valid JSON"},
		{"array stray colon", `[:]`, ingest.FormatJSON, 0, "unexpected ':'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := ingest.DecodeReader(&onceReader{b: []byte(tt.body)}, tt.format, nil)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || audit.ErrorCode(err) != audit.EINVALID {
					t.Fatalf("err = %v, want it to mention %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tt.n {
				t.Fatalf("%d items, want %d", len(items), tt.n)
			}
		})
	}
}

// TestDecodeOversizeEventInStream: an event over the size cap inside a body
// is that event's error, found without holding it, and its neighbours pass.
func TestDecodeOversizeEventInStream(t *testing.T) {
	big := `{"action":"a.b","reason":"` + strings.Repeat("x", 3*audit.MaxEventBytes) + `"}`
	for _, tt := range []struct {
		body   string
		format ingest.Format
	}{
		{"[" + good + "," + big + "," + good + "]", ingest.FormatJSON},
		{good + "\n" + big + "\n" + good, ingest.FormatNDJSON},
	} {
		items, err := ingest.DecodeReader(&onceReader{b: []byte(tt.body)}, tt.format, nil)
		if err != nil || len(items) != 3 {
			t.Fatalf("err = %v, %d items", err, len(items))
		}
		if items[0].Err != nil || items[2].Err != nil || audit.ErrorCode(items[1].Err) != audit.ETOOLARGE {
			t.Fatalf("items: %v / %v / %v", items[0].Err, items[1].Err, items[2].Err)
		}
	}
}

// TestDecodeReadErrorPassesThrough: the reader's own error (a size cap, the
// server's byte budget) reaches the caller in the chain, not as EINVALID.
func TestDecodeReadErrorPassesThrough(t *testing.T) {
	boom := io.ErrClosedPipe
	for _, f := range []ingest.Format{ingest.FormatJSON, ingest.FormatNDJSON, ingest.FormatSniff} {
		r := io.MultiReader(strings.NewReader("["+good+","), &errReader{boom})
		if f != ingest.FormatJSON {
			r = io.MultiReader(strings.NewReader(good+"\n"), &errReader{boom})
		}
		_, err := ingest.DecodeReader(r, f, nil)
		if err == nil || !errors.Is(err, boom) {
			t.Fatalf("format %d: err = %v", f, err)
		}
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// TestDecodeRefusesBadText is issue 9.8: invalid UTF-8 and unpaired
// surrogate escapes were silently replaced with U+FFFD; now the event is
// refused, naming the field.
func TestDecodeRefusesBadText(t *testing.T) {
	tests := []struct{ raw, field string }{
		{"{\"action\":\"a.b\",\"actor\":{\"id\":\"al\xffce\"}}", "actor.id"},
		{`{"action":"a.b","actor":{"id":"al\ud800ce"}}`, "actor.id"},
		{`{"action":"a.b","context":{"user_agent":"\udc00"}}`, "context.user_agent"},
		{"{\"action\":\"a.b\",\"context\":{\"geo\":{\"city\":\"\xc3\"}}}", "context.geo.city"},
		{"{\"action\":\"a.b\",\"metadata\":{\"k\":\"\xed\xa0\x80\"}}", "metadata"},
		{"{\"action\":\"a.b\",\"metadata\":{\"\xff\":1}}", "metadata"},
		{"{\"action\":\"a.\xffb\"}", "action"},
	}
	for _, tt := range tests {
		_, err := ingest.DecodeEvent([]byte(tt.raw))
		if audit.ErrorField(err) != tt.field || !strings.HasSuffix(audit.ErrorMessage(err), "not valid UTF-8") {
			t.Errorf("%q: err = %v, want %s is not valid UTF-8", tt.raw, err, tt.field)
		}
	}
	// Valid escapes and literal non-ASCII text pass.
	ev, err := ingest.DecodeEvent([]byte(`{"action":"a.b","actor":{"id":"J\u00fcrgen \ud83d\ude00 \ufffd Zoë"}}`))
	if err != nil || ev.Actor.ID != "Jürgen 😀 \ufffd Zoë" {
		t.Fatalf("valid text: %v %q", err, ev.Actor.ID)
	}
}

// TestDecodeRefusesZeroTime is issue 9.8: 0001-01-01T00:00:00Z became the
// receive time (zero means "absent") while other pre-2000 times were
// refused; now it is refused the same way.
func TestDecodeRefusesZeroTime(t *testing.T) {
	for _, ts := range []string{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"} {
		_, err := ingest.DecodeEvent([]byte(`{"action":"a.b","time":"` + ts + `"}`))
		if audit.ErrorField(err) != "time" || !strings.Contains(audit.ErrorMessage(err), "before the year 2000") {
			t.Errorf("%s: %v", ts, err)
		}
	}
}

// TestEveryProblemOfAnEvent is issue 10.3 end to end in the service: the
// decoder's problems (unknown fields, wrong types, a bad IP) and
// validation's (missing catalog fields) come back together, each field
// named once.
func TestEveryProblemOfAnEvent(t *testing.T) {
	svc, _ := newService(t)
	acme := audit.Principal{Tenant: "acme", Scopes: []audit.Scope{audit.ScopeEventsWrite}}
	items := decode(t, `{"action":"auth.login.success","actor":{"id":"alice","colour":"red"},"ip":"203.0.113.7","context":{"ip":"300.1.1.1","session_id":7}}`)
	res, err := svc.Ingest(t.Context(), acme, items)
	if err != nil || res.Rejected != 1 {
		t.Fatalf("res %+v, err %v", res, err)
	}
	var fields []string
	for _, p := range audit.ErrorProblems(res.Results[0].Err) {
		fields = append(fields, p.Field)
	}
	want := "colour ip context.session_id context.ip context.user_agent context.auth_method"
	if strings.Join(fields, " ") != want {
		t.Fatalf("problems at %v, want %s (%v)", fields, want, res.Results[0].Err)
	}
	// At most 20 problems per event, however many unknown keys it has.
	var b strings.Builder
	b.WriteString(`{"action":"a.b"`)
	for i := range 500 {
		fmt.Fprintf(&b, `,"k%d":1`, i)
	}
	b.WriteString("}")
	_, err = ingest.DecodeEvent([]byte(b.String()))
	if ps := audit.ErrorProblems(err); len(ps) != 21 || ps[20].Message != "and 480 more problems" {
		t.Fatalf("%d problems, last %+v", len(ps), ps[len(ps)-1])
	}
}
