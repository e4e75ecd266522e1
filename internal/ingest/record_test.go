package ingest_test

import (
	"context"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
)

// TestRecordBatch: the server's own path appends vigil. records of the
// tenants the principal reaches, assigning ids and receive times, and
// refuses anything else.
func TestRecordBatch(t *testing.T) {
	st := memstream.New(memstream.Options{})
	svc, err := ingest.New(ingest.Options{Stream: st, TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, ev := range []*audit.Event{
		{Tenant: "a", Action: audit.ActionLoginSuccess, Actor: audit.Actor{ID: "x"}},
		{Action: audit.ActionSearch, Actor: audit.Actor{ID: "k", Type: audit.ActorAPIKey}},
	} {
		if err := svc.RecordBatch(ctx, audit.Principal{KeyID: "k"}, []*audit.Event{ev}); err == nil {
			t.Errorf("RecordBatch(%s in %q) succeeded", ev.Action, ev.Tenant)
		}
	}
	ev := &audit.Event{Tenant: "a", Action: audit.ActionSearch, Actor: audit.Actor{ID: "k", Type: audit.ActorAPIKey}, Metadata: map[string]any{"route": "GET /v1/events"}}
	if err := svc.RecordBatch(ctx, audit.Principal{KeyID: "k"}, []*audit.Event{ev, {Tenant: "b", Action: audit.ActionSearch, Actor: ev.Actor}}); err != nil {
		t.Fatal(err)
	}
	recs, err := st.Read(ctx, 0, 10)
	if err != nil || len(recs) != 2 || recs[0].Event.ID == "" || recs[0].Event.ReceivedAt.IsZero() || recs[0].Event.Action != audit.ActionSearch {
		t.Fatalf("stream after Record: %+v %v", recs, err)
	}
}
