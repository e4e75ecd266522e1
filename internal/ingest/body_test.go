package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBodyReaderReuseKeepsResults decodes a body, then other bodies through
// the same pooled buffers, and checks the first result is unchanged: a
// decoded event or error must not refer to a reused buffer.
func TestBodyReaderReuseKeepsResults(t *testing.T) {
	body := func(seed string) []byte {
		var b bytes.Buffer
		for i := range 3 {
			fmt.Fprintf(&b, `{"action":"auth.login.failure","actor":{"id":"%s-%d@example.com","type":"user"},"context":{"ip":"203.0.113.%d","user_agent":"%s agent","session_id":"%s-s"},"reason":"invalid_password","time":"2026-11-25T10:00:0%dZ","metadata":{"k-%s":"v-%s","n":%d,"list":["%s"]}}`+"\n",
				seed, i, i+1, seed, seed, i, seed, seed, i, seed)
		}
		// An event with problems: its messages quote the raw values.
		fmt.Fprintf(&b, `{"action":"%s","time":"%s-not-a-time","context":{"ip":"%s-not-an-ip"},"bogus_%s":1}`+"\n", seed, seed, seed, seed)
		return b.Bytes()
	}
	type result struct {
		Index int
		Event string
		Err   string
	}
	flatten := func(items []Item) []result {
		var out []result
		for _, it := range items {
			r := result{Index: it.Index}
			if it.Event != nil {
				r.Event = fmt.Sprintf("%+v", *it.Event)
			}
			if it.Err != nil {
				r.Err = it.Err.Error()
			}
			out = append(out, r)
		}
		return out
	}
	// As NDJSON (with a line that is not JSON) and as a JSON array.
	ndjson := func(seed string) []byte { return append(body(seed), `{"action": `+seed+"\n"...) }
	array := func(seed string) []byte {
		return append(append([]byte("["), bytes.ReplaceAll(bytes.TrimSpace(body(seed)), []byte("\n"), []byte(","))...), ']')
	}
	for _, c := range []struct {
		name   string
		make   func(string) []byte
		format Format
	}{{"ndjson", ndjson, FormatNDJSON}, {"array", array, FormatJSON}} {
		items, err := DecodeReader(bytes.NewReader(c.make("aaaa")), c.format, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(items) < 4 || items[0].Err != nil || items[3].Err == nil {
			t.Fatalf("%s: unexpected results: %+v", c.name, flatten(items))
		}
		want := flatten(items)
		for i := range 20 {
			_, _ = DecodeReader(bytes.NewReader(c.make(strings.Repeat(string(rune('b'+i)), 4))), c.format, nil)
		}
		if diff := cmp.Diff(want, flatten(items)); diff != "" {
			t.Errorf("%s: the first body's results changed after later bodies were decoded (-before +after):\n%s", c.name, diff)
		}
	}
}
