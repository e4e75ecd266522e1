package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

func openAlertStore(t *testing.T) *Store {
	t.Helper()
	url, schema := pgtest.Schema(t)
	s, err := Open(t.Context(), Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// writeChange records what a finding write changes, the way the finding
// store does: recordChange inside the write's transaction.
func writeChange(t *testing.T, s *Store, e entityChange) {
	t.Helper()
	if err := s.inTx(t.Context(), "write finding", func(tx pgx.Tx) error { return s.recordChange(t.Context(), tx, e) }); err != nil {
		t.Fatal(err)
	}
}

func findingChange(id string, sev audit.Severity, doc string) entityChange {
	return entityChange{kind: audit.KindFinding, tenant: "a", id: id, severity: sev, status: audit.StatusOpen, rule: "stuffing", doc: []byte(doc)}
}

// TestAlertPipeline follows changes from the log through the outbox:
// changes → ChangesAfter → Enqueue → OpenDeliveries → Seal → Due →
// RecordAttempt → dead → Replay.
func TestAlertPipeline(t *testing.T) {
	s := openAlertStore(t)
	ctx := t.Context()
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	if err := s.CreateSubscription(ctx, audit.Subscription{ID: "w1", Tenant: "a", URL: "https://example.com", Format: "json", CreatedAt: now}, 5); err != nil {
		t.Fatal(err)
	}
	// A NUL travels in a document: bodies and items are bytea.
	writeChange(t, s, findingChange("f1", audit.SeverityMedium, "{\"x\":\"\x00\"}"))
	writeChange(t, s, findingChange("f1", audit.SeverityMedium, `{"replayed":true}`)) // nothing new
	writeChange(t, s, findingChange("f1", audit.SeverityCritical, `{"escalated":true}`))
	writeChange(t, s, findingChange("f2", audit.SeverityLow, `{"f":2}`))
	human := findingChange("f2", audit.SeverityLow, `{"ack":true}`)
	human.human, human.status = true, audit.StatusAcknowledged
	writeChange(t, s, human)

	cs, err := s.ChangesAfter(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.LifecycleChange{audit.ChangeOpened, audit.ChangeEscalated, audit.ChangeOpened, audit.ChangeAcknowledged}
	if len(cs) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(cs), len(want), cs)
	}
	for i, c := range cs {
		if c.Change != want[i] || c.Seq != int64(i+1) || c.Tenant != "a" || c.Kind != audit.KindFinding || c.At.IsZero() {
			t.Fatalf("change %d: %+v, want %s", i, c, want[i])
		}
	}
	if cs[0].Severity != audit.SeverityMedium || cs[1].Severity != audit.SeverityCritical || string(cs[0].Doc) != "{\"x\":\"\x00\"}" {
		t.Fatalf("severities or doc: %+v", cs[:2])
	}
	if last, err := s.LastChange(ctx); err != nil || last != 4 {
		t.Fatalf("LastChange = %d, %v", last, err)
	}

	var items []audit.OutboxItem
	for _, c := range cs[:3] {
		items = append(items, audit.OutboxItem{SubscriptionID: "w1", Tenant: "a", Seq: c.Seq, Doc: c.Doc})
	}
	if _, err := s.Enqueue(ctx, cs[2].Seq, items, 10, 100, now); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.AlertCursor(ctx); err != nil || cur != 3 {
		t.Fatalf("cursor = %d, %v", cur, err)
	}
	// A stale fan-out adds its items but never moves the cursor back.
	if _, err := s.Enqueue(ctx, 1, []audit.OutboxItem{{SubscriptionID: "w1", Tenant: "a", Seq: 4, Doc: cs[3].Doc}}, 10, 100, now); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.AlertCursor(ctx); err != nil || cur != 3 {
		t.Fatalf("cursor after a stale enqueue = %d, %v; want 3", cur, err)
	}
	if left, err := s.ChangesAfter(ctx, 0, 100); err != nil || len(left) != 1 || left[0].Seq != 4 {
		t.Fatalf("changes left = %+v, %v", left, err)
	}

	open, err := s.OpenDeliveries(ctx, now.Add(time.Second), 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Items != 4 || len(open[0].ItemDocs) != 4 || string(open[0].ItemDocs[0]) != "{\"x\":\"\x00\"}" {
		t.Fatalf("open deliveries: %+v", open)
	}
	id := open[0].ID
	body := []byte("[\x00]")
	if err := s.SealDelivery(ctx, id, body, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueDeliveries(ctx, now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != id || string(due[0].Body) != string(body) || due[0].ItemDocs != nil {
		t.Fatalf("due: %+v", due)
	}
	long := string(make([]byte, 400)) + "é" + string(make([]byte, 400))
	if err := s.RecordAttempt(ctx, id, audit.AttemptResult{At: now.Add(2 * time.Minute), Dead: true, StatusCode: 500, Error: long}); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDelivery(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != audit.DeliveryDead || d.Attempts != 1 || len(d.LastError) > maxAlertErrorBytes {
		t.Fatalf("dead: %+v", d)
	}
	if due, _ := s.DueDeliveries(ctx, now.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("a dead delivery is due: %+v", due)
	}
	r, err := s.ReplayDelivery(ctx, id, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != audit.DeliveryPending || r.Attempts != 0 {
		t.Fatalf("replayed: %+v", r)
	}
	due, err = s.DueDeliveries(ctx, now.Add(time.Hour), 10)
	if err != nil || len(due) != 1 || string(due[0].Body) != string(body) {
		t.Fatalf("due after replay: %+v, %v", due, err)
	}
	if err := s.RecordAttempt(ctx, id, audit.AttemptResult{At: now.Add(time.Hour), Delivered: true, StatusCode: 204}); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneDeliveries(ctx, now.Add(2*time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDelivery(ctx, id); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Fatalf("pruned delivery: %v", err)
	}
}

// TestSIEMPruneChanges checks the change log's holders and bound over
// changes written by recordChange.
func TestSIEMPruneChanges(t *testing.T) {
	s := openAlertStore(t)
	ctx := t.Context()
	if err := s.RegisterSIEMSinks(ctx, []string{"early"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		writeChange(t, s, findingChange(fmt.Sprintf("f%d", i), audit.SeverityHigh, `{}`))
	}
	if err := s.RegisterSIEMSinks(ctx, []string{"early", "late"}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.SIEMCursor(ctx, "late"); err != nil || c.Changes != 5 {
		t.Fatalf("late sink: %+v, %v", c, err)
	}
	if err := s.CommitSIEMChanges(ctx, "early", 2, 0); err != nil {
		t.Fatal(err)
	}
	res, err := s.PruneChanges(ctx, true, 1000, time.Time{})
	if err != nil || res.Deleted != 0 {
		t.Fatalf("prune holding for webhooks: %+v, %v", res, err)
	}
	res, err = s.PruneChanges(ctx, false, 1000, time.Time{})
	if err != nil || res.Deleted != 2 {
		t.Fatalf("prune of passed changes: %+v, %v", res, err)
	}
	res, err = s.PruneChanges(ctx, true, 1, time.Time{})
	if err != nil || res.Deleted != 2 || res.Skipped["early"] != 2 || res.Skipped[WebhookHolder] != 2 {
		t.Fatalf("prune beyond the bound: %+v, %v", res, err)
	}
	if c, err := s.SIEMCursor(ctx, "early"); err != nil || c.Changes != 4 || c.ChangesDropped != 2 {
		t.Fatalf("early after the bound: %+v, %v", c, err)
	}
	// The age bound: everything recorded before now goes.
	res, err = s.PruneChanges(ctx, true, 1000, time.Now().Add(time.Hour))
	if err != nil || res.Deleted != 1 || res.Skipped["late"] != 0 {
		t.Fatalf("prune by age: %+v, %v", res, err)
	}
	if last, err := s.LastChange(ctx); err != nil || last != 5 {
		t.Fatalf("LastChange after deletion = %d, %v", last, err)
	}
	// Actions record changes in the same log, in order.
	if _, err := s.CreateAction(ctx, audit.ResponseAction{ID: "act", Tenant: "a", Type: audit.RespLockAccount, ActorID: "bob", Severity: audit.SeverityHigh}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.ChangesAfter(ctx, 5, 10)
	if err != nil || len(cs) != 1 || cs[0].Seq != 6 || cs[0].Kind != audit.KindAction || cs[0].EntityID != "act" {
		t.Fatalf("action change: %+v, %v", cs, err)
	}
}

// TestEnqueueConcurrent checks that concurrent fan-outs never fill a
// delivery past maxItems nor lose an item.
func TestEnqueueConcurrent(t *testing.T) {
	s := openAlertStore(t)
	ctx := t.Context()
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var items []audit.OutboxItem
			for i := range 5 {
				items = append(items, audit.OutboxItem{SubscriptionID: "w", Tenant: "a", Seq: int64(w*100 + i), Doc: []byte(`{}`)})
			}
			_, err := s.Enqueue(ctx, int64(w), items, 3, 0, now)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	open, err := s.OpenDeliveries(ctx, now.Add(time.Second), 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, d := range open {
		if d.Items > 3 || d.Items != len(d.ItemDocs) {
			t.Fatalf("delivery %s holds %d items (%d docs), max 3", d.ID, d.Items, len(d.ItemDocs))
		}
		total += d.Items
	}
	if total != 40 {
		t.Fatalf("%d items enqueued, want 40", total)
	}
	if cur, err := s.AlertCursor(ctx); err != nil || cur != 7 {
		t.Fatalf("cursor = %d, %v; want 7", cur, err)
	}
}
