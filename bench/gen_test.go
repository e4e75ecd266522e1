package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/ingest"
)

// TestGenEventsAreValid runs generated events through the server's own
// decoder and catalog validation: every one must be accepted, the average
// size must be realistic, and the mix must contain stuffing waves.
func TestGenEventsAreValid(t *testing.T) {
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	g := NewGen(10_000, end.Add(-10*24*time.Hour), end)
	var body []byte
	actions := map[string]int{}
	stuffing, bytesTotal := 0, 0
	for i := range g.N {
		n := len(body)
		var ev Event
		body, ev = g.AppendJSON(body, i)
		bytesTotal += len(body) - n
		body = append(body, '\n')
		actions[ev.Action]++
		if ok, _ := g.stuffing(i); ok {
			stuffing++
		}
	}
	items, err := ingest.Decode(body, ingest.FormatNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != g.N {
		t.Fatalf("decoded %d events, want %d", len(items), g.N)
	}
	for _, it := range items {
		if it.Err != nil {
			t.Fatalf("event %d: %v", it.Index, it.Err)
		}
		it.Event.Normalize(end)
		if err := it.Event.Validate(end); err != nil {
			t.Fatalf("event %d: %v\n%s", it.Index, err, bytes.Split(body, []byte("\n"))[it.Index])
		}
	}
	avg := bytesTotal / g.N
	if avg < 380 || avg > 520 {
		t.Errorf("average event is %d bytes, want ~400-500", avg)
	}
	if stuffing == 0 || actions["user.email.changed"] == 0 || actions["auth.login.success"] < g.N/3 {
		t.Errorf("unexpected mix: %d stuffing, %v", stuffing, actions)
	}
	t.Logf("avg %d B/event, %d stuffing attempts, actions %v", avg, stuffing, actions)
}

// TestGenDeterministic checks that an event is a pure function of its index.
func TestGenDeterministic(t *testing.T) {
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := NewGen(5000, end.Add(-time.Hour), end), NewGen(5000, end.Add(-time.Hour), end)
	for _, i := range []int{0, 1, 999, 1000, 4999} {
		x, _ := a.AppendJSON(nil, i)
		y, _ := b.AppendJSON(nil, i)
		if !bytes.Equal(x, y) {
			t.Fatalf("event %d differs:\n%s\n%s", i, x, y)
		}
	}
	seen := map[string]bool{}
	for i := range 5000 {
		id := a.Event(i).ID
		if len(id) != 26 || seen[id] {
			t.Fatalf("event %d: bad or repeated id %q", i, id)
		}
		seen[id] = true
	}
}

func BenchmarkGen(b *testing.B) {
	g := NewGen(1_000_000, time.Unix(1.7e9, 0), time.Unix(1.7e9+864000, 0))
	var buf []byte
	i := 0
	for b.Loop() {
		buf, _ = g.AppendJSON(buf[:0], i)
		i++
	}
}
