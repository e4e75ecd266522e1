package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// endingContext reports itself ended (Err) after its first n checks, without
// closing Done: it ends between two rows of a write, where the row loops
// look, as a request cancelled mid-batch does.
type endingContext struct {
	context.Context
	n int
}

func (c *endingContext) Err() error {
	if c.n <= 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

// TestRowWritesStopWhenTheContextEnds: the single-row statements of the
// batch writes run without the caller's cancellation (see rowContext), so
// each loop checks the context itself: a context that ends mid-batch stops
// the write with the context's error and stores none of the batch.
func TestRowWritesStopWhenTheContextEnds(t *testing.T) {
	db := openDB(t, sqlite.Options{})
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ending := func() context.Context { return &endingContext{Context: t.Context(), n: 3} }
	var fs []audit.Finding
	var is []audit.Incident
	var evs []audit.Event
	var chain []audit.ChainEntry
	puts := map[string][]byte{}
	for i := range 10 {
		id := fmt.Sprintf("x%02d", i)
		fs = append(fs, audit.Finding{ID: "fnd_" + id, Tenant: "t1", RuleID: "brute-force", Severity: audit.SeverityHigh,
			FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at})
		is = append(is, audit.Incident{ID: "inc_" + id, Tenant: "t1", Severity: audit.SeverityHigh, FirstSeen: at, LastSeen: at})
		evs = append(evs, audit.Event{ID: "ev_" + id, Tenant: "t1", Time: at, ReceivedAt: at, Action: audit.ActionLoginFailure,
			Actor: audit.Actor{ID: "alice"}})
		chain = append(chain, audit.ChainEntry{Tenant: "t1", Day: "2026-03-02", Seq: int64(i + 1), EventID: "ev_" + id,
			Leaf: []byte{byte(i)}, Hash: []byte{byte(i)}})
		puts["k/"+id] = []byte(id)
	}
	for i := range evs {
		evs[i].Normalize(at)
	}

	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a context ending mid-batch: %v, want context.Canceled", name, err)
		}
	}
	check("UpsertFindings", db.UpsertFindings(ending(), fs))
	check("UpsertIncidents", db.UpsertIncidents(ending(), is))
	check("InsertEvents", db.Events().InsertEvents(ending(), evs))
	check("AppendChain", db.AppendChain(ending(), chain))
	check("SaveState", db.SaveState(ending(), "ns", puts, nil))

	ctx := t.Context()
	for i := range 10 {
		if _, err := db.GetFinding(ctx, "t1", fs[i].ID); audit.ErrorCode(err) != audit.ENOTFOUND {
			t.Errorf("finding %s after the cancelled write: %v, want not found", fs[i].ID, err)
		}
		if _, err := db.GetIncident(ctx, "t1", is[i].ID); audit.ErrorCode(err) != audit.ENOTFOUND {
			t.Errorf("incident %s after the cancelled write: %v, want not found", is[i].ID, err)
		}
		if _, err := db.Events().GetEvent(ctx, "t1", evs[i].ID); audit.ErrorCode(err) != audit.ENOTFOUND {
			t.Errorf("event %s after the cancelled write: %v, want not found", evs[i].ID, err)
		}
	}
	if h, err := db.ChainHead(ctx, "t1", "2026-03-02"); err != nil || h.Count != 0 {
		t.Errorf("chain head after the cancelled append: %+v, %v; want none", h, err)
	}
	n := 0
	if err := db.ScanState(ctx, "ns", func(string, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("state after the cancelled save: %d keys, %v; want none", n, err)
	}

	// The same writes with a live context store everything.
	if err := db.UpsertFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveState(ctx, "ns", puts, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetFinding(ctx, "t1", fs[9].ID); err != nil {
		t.Errorf("finding after a live write: %v", err)
	}
}
