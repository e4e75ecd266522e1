package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
)

func newService(t *testing.T) (*ingest.Service, *memstream.Stream) {
	t.Helper()
	st := memstream.New(memstream.Options{})
	t.Cleanup(func() { st.Close() })
	svc, err := ingest.New(ingest.Options{
		Stream: st,
		TenantExists: func(_ context.Context, tenant string) (bool, error) {
			return tenant == "acme" || tenant == "globex", nil
		},
		Now: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

func decode(t *testing.T, body string) []ingest.Item {
	t.Helper()
	items, err := ingest.Decode([]byte(body), ingest.FormatNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func TestMixedBatchStoresExactlyTheGoodEvents(t *testing.T) {
	svc, st := newService(t)
	acme := audit.Principal{Tenant: "acme", Scopes: []audit.Scope{audit.ScopeEventsWrite}}
	body := `{"id":"e1","action":"auth.logout","actor":{"id":"u1"},"context":{"session_id":"s"},"reason":"user"}
{"id":"e2","action":"auth.logout","actor":{"id":"u1"}}
{"id":"e3","action":"billing.invoice.paid","actor":{"id":"u2"}}
{"id":"e4","action":"auth.logout","tenant":"globex","actor":{"id":"u1"},"context":{"session_id":"s"},"reason":"user"}
not json
{"action":"data.exported","actor":{"id":"u3"},"metadata":{"records":10}}`
	res, err := svc.Ingest(t.Context(), acme, decode(t, body))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []string{"accepted", "rejected", "accepted", "rejected", "rejected", "accepted"}
	wantField := []string{"", "context.session_id", "", "tenant", "", ""}
	for i, r := range res.Results {
		if r.Status != wantStatus[i] || audit.ErrorField(r.Err) != wantField[i] {
			t.Errorf("result %d = %s %q (%v), want %s %q", i, r.Status, audit.ErrorField(r.Err), r.Err, wantStatus[i], wantField[i])
		}
	}
	if audit.ErrorCode(res.Results[3].Err) != audit.EFORBIDDEN {
		t.Errorf("cross-tenant write code = %s", audit.ErrorCode(res.Results[3].Err))
	}
	if res.Accepted != 3 || res.Rejected != 3 {
		t.Fatalf("counts = %+v", res)
	}
	recs, _ := st.Read(t.Context(), 0, 100)
	if len(recs) != 3 {
		t.Fatalf("stream holds %d records, want 3", len(recs))
	}
	for _, r := range recs {
		if r.Event.Tenant != "acme" || r.Event.ID == "" || r.Event.ReceivedAt.IsZero() {
			t.Fatalf("stored event not completed: %+v", r.Event)
		}
	}
	if res.Results[5].ID == "" || len(res.Results[5].ID) != 26 {
		t.Fatalf("generated id = %q", res.Results[5].ID)
	}
}

func TestRetryIsDuplicate(t *testing.T) {
	svc, st := newService(t)
	p := audit.Principal{Tenant: "acme", Scopes: []audit.Scope{audit.ScopeEventsWrite}}
	body := `{"id":"k1","action":"app.thing.done","actor":{"id":"u"}}`
	for i := range 3 {
		res, err := svc.Ingest(t.Context(), p, decode(t, body))
		if err != nil {
			t.Fatal(err)
		}
		want := "duplicate"
		if i == 0 {
			want = "accepted"
		}
		if res.Results[0].Status != want {
			t.Fatalf("attempt %d: %s, want %s", i, res.Results[0].Status, want)
		}
	}
	// The same id in another tenant is another event.
	op := audit.Principal{}
	res, err := svc.Ingest(t.Context(), op, decode(t, `{"id":"k1","tenant":"globex","action":"app.thing.done","actor":{"id":"u"}}`))
	if err != nil || res.Accepted != 1 {
		t.Fatalf("other tenant: %+v %v", res, err)
	}
	recs, _ := st.Read(t.Context(), 0, 100)
	if len(recs) != 2 {
		t.Fatalf("stream holds %d, want 2", len(recs))
	}
}

func TestOperatorMustNameExistingTenant(t *testing.T) {
	svc, _ := newService(t)
	op := audit.Principal{}
	res, err := svc.Ingest(t.Context(), op, decode(t, `{"action":"a.b","actor":{"id":"u"}}
{"action":"a.b","tenant":"initech","actor":{"id":"u"}}
{"action":"a.b","tenant":"acme","actor":{"id":"u"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if f := audit.ErrorField(res.Results[0].Err); f != "tenant" {
		t.Errorf("no tenant: field %q", f)
	}
	if c := audit.ErrorCode(res.Results[1].Err); c != audit.ENOTFOUND {
		t.Errorf("unknown tenant: code %q", c)
	}
	if res.Results[2].Status != ingest.StatusAccepted {
		t.Errorf("named tenant: %+v", res.Results[2])
	}
}

func TestBacklogFullFailsWholeRequest(t *testing.T) {
	st := memstream.New(memstream.Options{MaxBacklog: 1})
	svc, err := ingest.New(ingest.Options{Stream: st, TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	p := audit.Principal{Tenant: "acme"}
	_, err = svc.Ingest(t.Context(), p, decode(t, `{"action":"a.b","actor":{"id":"u"}}
{"action":"a.b","actor":{"id":"u"}}`))
	if audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if recs, _ := st.Read(t.Context(), 0, 10); len(recs) != 0 {
		t.Fatalf("a failed append stored %d events", len(recs))
	}
}
