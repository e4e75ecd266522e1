package sqlite

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestDecodePrefixAgrees checks the query runner's partial decode against
// the full codec on events with every prefix field set and unset.
func TestDecodePrefixAgrees(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	evs := []audit.Event{
		{ID: "1", Tenant: "a", Time: at, Action: audit.ActionLoginFailure, ReceivedAt: at.Add(time.Millisecond),
			Outcome: audit.OutcomeFailure, Reason: "invalid_password", Actor: audit.Actor{ID: "alice", Email: "a@x"},
			Context: audit.Context{IP: netip.MustParseAddr("203.0.113.7")}, Metadata: map[string]any{"k": "v"}},
		{ID: "2", Tenant: "a", Time: at, Action: "custom.thing"},
	}
	for _, ev := range evs {
		dict := &memDict{ids: map[string]uint64{}}
		body, err := encodeEvent(nil, &ev, encodeOpts{omitKey: true, dict: dict})
		if err != nil {
			t.Fatal(err)
		}
		var full, lean audit.Event
		if err := decodeEvent(body, &full, encodeOpts{omitKey: true, dict: dict}); err != nil {
			t.Fatal(err)
		}
		if err := decodePrefix(body, &lean, dict); err != nil {
			t.Fatal(err)
		}
		if lean.ReceivedAt != full.ReceivedAt || lean.Outcome != full.Outcome || lean.Reason != full.Reason || lean.Actor.ID != full.Actor.ID {
			t.Fatalf("prefix decode %+v disagrees with %+v", lean, full)
		}
	}
}

type memDict struct {
	ids   map[string]uint64
	names []string
}

func (d *memDict) lookup(s string) (uint64, bool) {
	if id, ok := d.ids[s]; ok {
		return id, true
	}
	d.ids[s] = uint64(len(d.names))
	d.names = append(d.names, s)
	return d.ids[s], true
}

func (d *memDict) name(id uint64) (string, bool) {
	if id >= uint64(len(d.names)) {
		return "", false
	}
	return d.names[id], true
}
