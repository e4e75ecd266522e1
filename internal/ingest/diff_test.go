package ingest

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
)

// diffCases are inputs on which the scanner must agree with the
// encoding/json reference; they also seed FuzzDecodeMatchesReference.
var diffCases = []string{
	// A stray closing bracket after the object is trailing data (json.Decoder.More alone let it through).
	"{}}", "{}}\xe7", "{} ]", `{"action":"a.b"}}`,
	// Ordinary events.
	`{"action":"auth.login.failure","actor":{"id":"alice@example.com"},"context":{"ip":"203.0.113.7"},"reason":"invalid_password","time":"2026-11-25T10:00:00Z","metadata":{"attempt":3}}`,
	`{"id":"evt-1","tenant":"acme","time":"2026-11-25T10:00:00.123456789+05:30","action":"a.b","outcome":"success","reason":"r","actor":{"id":"u","type":"user","email":"e@x","name":"N"},"target":{"type":"t","id":"i","name":"n"},"context":{"ip":"::ffff:1.2.3.4%eth0","user_agent":"ua","session_id":"s","request_id":"q","auth_method":"password","device_id":"d","geo":{"country":"DE","region":"BE","city":"Berlin","latitude":52.5,"longitude":-13.4e0}},"metadata":{"a":{"b":[1,{"c":null}]},"s":"x\u00e9"}}`,
	" \t\r\n{ \"action\" : \"a.b\" , \"actor\" : { \"id\" : \"x\" } } \n",
	`{}`,
	`{"action":""}`,
	// Case-insensitive and escaped keys.
	`{"ACTION":"a.b","Actor":{"ID":"x","eMail":"e"},"CONTEXT":{"User_Agent":"u","GEO":{"City":"c"}}}`,
	`{"\u0061ction":"a.b","actor":{"\u0069d":"x"}}`,
	"{\"action\":\"a.b\",\"context\":{\"\u017Fession_id\":\"s\",\"reaſon\":1}}",
	"{\"reaſon\":\"r\",\"action\":\"a\"}",
	"{\"\u212Aey\":1}",
	`{"actio":"a"}`,
	`{"actionx":"a"}`,
	`{"":"a"}`,
	`{"a\"":1}`,
	`{"\"x":1}`,
	`{"\u0001":1}`,
	"{\"\xff\":1}",
	// Duplicates, merging and null.
	`{"action":"a","action":"b"}`,
	`{"action":"a","action":null}`,
	`{"actor":{"id":"a"},"actor":{"type":"t"}}`,
	`{"actor":{"id":"a"},"actor":null}`,
	`{"context":{"geo":{"country":"US"}},"context":{"geo":{"city":"X"}}}`,
	`{"context":{"geo":{"country":"US"},"geo":null}}`,
	`{"context":{"geo":null,"geo":{}}}`,
	`{"context":{"geo":{"latitude":1,"latitude":null,"longitude":2}}}`,
	`{"time":"2026-11-25T10:00:00Z","time":null}`,
	`{"time":null}`,
	`{"time":"bad","time":"2026-11-25T10:00:00Z"}`,
	`{"metadata":{"a":1},"metadata":null}`,
	`{"metadata":null,"metadata":{"a":1}}`,
	`{"metadata":{"a":1,"a":2}}`,
	`{"metadata":{}}`,
	` {"metadata" : { "a" : [ ] , "b" : { } , "c" : [ 1 , "x" , true , false , null , { "d" : [ [ ] ] } ] } } `,
	`{"metadata":{"n":-0,"m":1E5,"o":1e-400,"p":-12.5e+3,"q":0.1,"r":123456789012345678901234567890}}`,
	`{"metadata":{"\u0041\n":"\ud83d\ude00\ud800","a":"x","a":{"b":1},"a":[null]}}`,
	"{\"metadata\":{\"\xff\":\"\xc3\x28\"}}",
	`{"metadata":{"x":[1e400]}}`,
	`{"metadata":{"x":{"y":-1e999}}}`,
	`{"context":{"ip":"1.2.3.4","ip":""}}`,
	`{"context":{"ip":null}}`,
	`{"actor":null,"target":null,"context":null,"id":null,"outcome":null}`,
	// Strings.
	`{"action":"\"\\\/\b\f\n\r\t\u0000\u00e9\u20ac"}`,
	`{"action":"\ud83d\ude00"}`,
	`{"action":"\ud83d"}`,
	`{"action":"\ude00\ud83d"}`,
	`{"action":"\ud83d\u0041"}`,
	`{"action":"\ud83d\ud83d\ude00"}`,
	`{"action":"\ud83dx"}`,
	"{\"action\":\"a\xffb\xc3\"}",
	"{\"action\":\"\xed\xa0\x80\"}",
	"{\"action\":\"\xe2\x82\xac\"}",
	"{\"action\":\"a\x01\"}",
	`{"action":"\x"}`,
	`{"action":"\'"}`,
	`{"action":"\u12"}`,
	`{"action":"\u12G4"}`,
	// Type errors.
	`{"action":"a.b","actor":{"id":42}}`,
	`{"action":"a.b","actor":"bob"}`,
	`{"action":"a.b","actor":[1]}`,
	`{"action":true}`,
	`{"action":{}}`,
	`{"action":[]}`,
	`{"time":1700000000}`,
	`{"time":{"a":1}}`,
	`{"context":{"geo":"x"}}`,
	`{"context":{"geo":{"latitude":"1"}}}`,
	`{"context":{"geo":{"latitude":1e400}}}`,
	`{"context":{"geo":{"latitude":-1e-400}}}`,
	`{"context":{"geo":{"latitude":true}}}`,
	`{"context":[]}`,
	`{"target":1}`,
	`{"actor":{"id":1},"colour":"red"}`,
	`{"colour":"red","actor":{"id":1}}`,
	`{"actor":{"id":1},"action":`,
	`{"actor":{"id":1},"action":x}`,
	// Unknown fields.
	`{"action":"a.b","colour":"red"}`,
	`{"action":"a.b","actor":{"id":"x","shoe":1}}`,
	`{"target":{"kind":{"deep":[1,2,{"x":null}]}}}`,
	`{"context":{"geo":{"altitude":1}}}`,
	`{"received_at":"2026-11-25T10:00:00Z"}`,
	// Post-scan checks.
	`{"context":{"ip":"300.1.1.1"}}`,
	`{"time":"yesterday","context":{"ip":"300.1.1.1"}}`,
	`{"metadata":[1]}`,
	`{"metadata":"x"}`,
	`{"metadata":1}`,
	`{"metadata":{"x":1e400}}`,
	`{"metadata":{"x":"` + strings.Repeat("y", audit.MaxMetadataBytes) + `"}}`,
	`{"metadata":"` + strings.Repeat("y", audit.MaxMetadataBytes) + `"}`,
	`{"action":"a","reason":"` + strings.Repeat("x", audit.MaxEventBytes) + `"}`,
	// Top level and trailing data.
	``,
	`   `,
	`null`,
	`null x`,
	`nul`,
	`nulx`,
	`true`,
	`123`,
	`123abc`,
	`-`,
	`"abc"`,
	`"abc`,
	`[1,2]`,
	`[1,2`,
	`{"action":"a"}}`,
	`{"action":"a"}]`,
	`{"action":"a"} x`,
	`{"action":"a"} {}`,
	`{"action":"a"}` + "\n\t ",
	`{"action":1} x`,
	// Syntax errors.
	`{`,
	`{"action"`,
	`{"action":`,
	`{"action":"a"`,
	`{"action":"a",}`,
	`{"action":"a" "b"}`,
	`{action:"a"}`,
	`{"action":'a'}`,
	`{"metadata":{"a":01}}`,
	`{"metadata":{"a":-}}`,
	`{"metadata":{"a":1.}}`,
	`{"metadata":{"a":1.e5}}`,
	`{"metadata":{"a":1e}}`,
	`{"metadata":{"a":1e+}}`,
	`{"metadata":{"a":.5}}`,
	`{"metadata":{"a":+5}}`,
	`{"metadata":{"a":[1,]}}`,
	`{"metadata":{"a":[,1]}}`,
	`{"metadata":{"a":tru}}`,
	`{"metadata":{"a":trUe}}`,
	`{"metadata":{"a":NaN}}`,
	`{"metadata":{"a":1}`,
	`{"metadata":{"a" 1}}`,
	`{"context":{"geo":{"latitude":-}}}`,
	`{"context":{"geo":{"latitude":1.}}}`,
	"\xef\xbb\xbf{}",
	"{\"metadata\":" + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}",
	"{\"metadata\":" + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + "}",
	"{\"metadata\":{\"a\":" + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + "}}",
	"{\"metadata\":{\"a\":" + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + "}}",
	"{\"colour\":" + strings.Repeat("{\"a\":", 10000) + "1" + strings.Repeat("}", 10000) + "}",
	"{\"colour\":" + strings.Repeat("[", 20000),
}

// addrEqual compares IP addresses, which go-cmp cannot look into.
var addrEqual = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// timeEqual compares times by instant and zone offset.
var timeEqual = cmp.Comparer(func(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Equal(b) && ao == bo
})

// checkSame fails t unless DecodeEvent and the reference agree on raw.
func checkSame(t *testing.T, raw []byte) {
	t.Helper()
	got, gotErr := DecodeEvent(raw)
	want, wantErr := referenceDecodeEvent(raw)
	// The scanner reports every problem where the reference stopped at the
	// first; the first must agree.
	var first audit.Problem
	if gotErr != nil {
		first = audit.ErrorProblems(gotErr)[0]
	}
	if strings.HasSuffix(first.Message, " is not valid UTF-8") {
		// The one deliberate difference: the reference turns bad text into
		// U+FFFD. The scanner may refuse it only if there is bad text, and
		// only where the reference found no syntax error (which beats
		// everything).
		if !hasBadText(raw) {
			t.Fatalf("input %q: %v, but the text is valid", clip(string(raw)), gotErr)
		}
		if wantErr != nil && isSyntaxError(wantErr) {
			t.Fatalf("input %q: %v, but the reference found a syntax error: %v", clip(string(raw)), gotErr, wantErr)
		}
		return
	}
	if gotErr == nil && hasBadText(raw) {
		t.Fatalf("input %q: bad text accepted", clip(string(raw)))
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("input %q:\nscanner err = %v\nreference err = %v", clip(string(raw)), gotErr, wantErr)
	}
	if wantErr != nil {
		if got != nil && audit.ErrorCode(gotErr) != audit.EINVALID {
			t.Fatalf("input %q: event %+v with error %v", clip(string(raw)), got, gotErr)
		}
		if g, w := audit.ErrorCode(gotErr), audit.ErrorCode(wantErr); g != w {
			t.Fatalf("input %q: code %q, reference %q (%v / %v)", clip(string(raw)), g, w, gotErr, wantErr)
		}
		if g, w := first.Field, audit.ErrorField(wantErr); g != w {
			t.Fatalf("input %q: field %q, reference %q (%v / %v)", clip(string(raw)), g, w, gotErr, wantErr)
		}
		if g, w := first.Message, wantErr.Error(); g != w {
			t.Fatalf("input %q: message\n%s\nreference\n%s", clip(string(raw)), g, w)
		}
		return
	}
	if diff := cmp.Diff(want, got, addrEqual, timeEqual); diff != "" {
		t.Fatalf("input %q: event differs from reference (-want +got):\n%s", clip(string(raw)), diff)
	}
}

// hasBadText reports whether raw holds invalid UTF-8 or a \u escape of an
// unpaired surrogate.
func hasBadText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return true
	}
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' || i+6 > len(raw) {
			i++ // an escaped character, possibly a backslash
			continue
		}
		r, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
		if err != nil {
			i++
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				if lo, err := strconv.ParseUint(string(raw[i+8:i+12]), 16, 32); err == nil && lo >= 0xDC00 && lo < 0xE000 {
					i += 11
					continue
				}
			}
			return true
		case r >= 0xDC00 && r < 0xE000:
			return true
		}
		i += 5
	}
	return false
}

func isSyntaxError(err error) bool {
	m := audit.ErrorMessage(err)
	return strings.HasPrefix(m, "event is not valid JSON") || m == "event is truncated" || strings.HasPrefix(m, "event has trailing data")
}

func TestDecodeEventMatchesReference(t *testing.T) {
	for _, c := range diffCases {
		checkSame(t, []byte(c))
	}
}

// TestDecodeEventPrefixesMatchReference checks every prefix of every case,
// which covers truncation at each byte.
func TestDecodeEventPrefixesMatchReference(t *testing.T) {
	for _, c := range diffCases {
		if len(c) > 2000 {
			continue
		}
		for i := range len(c) {
			checkSame(t, []byte(c[:i]))
		}
	}
}

// FuzzDecodeMatchesReference asserts that, for any input, the scanner and
// the encoding/json reference agree on accept/reject, on the decoded event
// and on the error's code, field and message.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, c := range diffCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkSame(t, raw)
	})
}
