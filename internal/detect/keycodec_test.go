package detect

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
)

// sampleKeyState is a keyed state with every part set.
func sampleKeyState() *keyState {
	return &keyState{
		Entries: []entry{{T: 1772409600000, ID: "01JQ0000000000000000000001", V: "203.0.113.7", M: true, R: 80},
			{T: 1772409600000, ID: "01JQ0000000000000000000002"}, {T: 1772409601500, ID: "ev3", V: "alice", R: 3}},
		Newest: 1772409601500, Bucket: 492336, BCount: 3, BMatched: 1, Base: 2.5, BaseM: 0.75, Closed: 12,
		Steps: []stepHit{{Step: 0, T: 1772409500000, ID: "a", R: 10}, {Step: 2, T: 1772409601500, ID: "b"}},
		Finding: &audit.Finding{ID: "f1", Tenant: "t1", RuleID: "credential-stuffing", Severity: audit.SeverityHigh,
			Explanation: "12 accounts from 203.0.113.7", Evidence: []string{"ev3"}, Count: 12},
		Until: 1772413201500, FVals: map[string]int32{"alice": 3, "bob": 1}, FValsCapped: true, FMatched: 4,
	}
}

// TestKeyStateCodecRoundTrips: the binary form decodes to the state that
// was encoded, whether every part is set or none.
func TestKeyStateCodecRoundTrips(t *testing.T) {
	for _, ks := range []*keyState{sampleKeyState(), {}, {Newest: -5, Until: 7}} {
		b, err := ks.encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got keyState
		if err := decodeKeyState(b, &got); err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if !reflect.DeepEqual(&got, ks) {
			t.Errorf("round trip changed the state:\n got %+v\nwant %+v", got, *ks)
		}
		js, _ := json.Marshal(ks)
		t.Logf("%d bytes binary, %d as JSON", len(b), len(js))
		for n := range b { // every truncation is refused
			if err := decodeKeyState(b[:n], &keyState{}); err == nil {
				t.Fatalf("decoded %d of %d bytes without an error", n, len(b))
			}
		}
	}
}

// FuzzDecodeKeyState: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to a value that decodes the same.
func FuzzDecodeKeyState(f *testing.F) {
	b, err := sampleKeyState().encode(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	js, _ := json.Marshal(sampleKeyState())
	f.Add(js)
	f.Add([]byte{keyStateVersion, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ks keyState
		if err := decodeKeyState(data, &ks); err != nil {
			return
		}
		b, err := ks.encode(nil)
		if err != nil {
			return // a JSON state whose finding does not encode
		}
		var again keyState
		if err := decodeKeyState(b, &again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		b2, err := again.encode(nil)
		if err != nil || string(b2) != string(b) {
			t.Fatalf("encode is not stable: %v", err)
		}
	})
}
