package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/okta"
)

// TestOktaRecordsDecode: the import phase's Okta records go through the
// Okta importer onto the actions the generator meant (catalog actions
// complete enough to be kept, the rest as okta.* custom actions), with
// the generator's ids, times, actors and addresses.
func TestOktaRecordsDecode(t *testing.T) {
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	g := NewGen(20_000, end.Add(-10*24*time.Hour), end)
	custom := map[string]bool{"session.created": true, "data.exported": true, "data.downloaded": true, "user.email.changed": true}
	seen := map[string]int{}
	for i := range 20_000 {
		want := g.Event(i)
		raw, err := json.Marshal(g.OktaRecord(i))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := okta.Decode(raw)
		if err != nil {
			t.Fatalf("record %d (%s): %v", i, want.Action, err)
		}
		switch {
		case custom[want.Action]:
			if !audit.ValidAction(ev.Action) || audit.InCatalog(ev.Action) {
				t.Fatalf("record %d: %s became %s, want an okta.* custom action", i, want.Action, ev.Action)
			}
		case ev.Action != want.Action:
			t.Fatalf("record %d: %s became %s (%v)", i, want.Action, ev.Action, ev.Metadata["unmapped"])
		}
		if !ev.Time.Equal(want.Time) || ev.Actor.ID != want.Actor+"@example.com" || ev.Context.IP != want.IP {
			t.Fatalf("record %d: %+v, want %+v", i, ev, want)
		}
		seen[want.Action]++
	}
	if len(seen) < 10 {
		t.Fatalf("only %d actions in 20,000 records: %v", len(seen), seen)
	}
}
