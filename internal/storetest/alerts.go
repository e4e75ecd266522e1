package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func subscription(tenant, id string, created time.Time) audit.Subscription {
	return audit.Subscription{ID: id, Tenant: tenant, Name: "hook " + id, URL: "https://example.com/" + id, Format: "json",
		Changes: []audit.LifecycleChange{audit.ChangeOpened}, Kinds: []string{audit.KindFinding}, SecretGen: 1,
		CreatedAt: created, UpdatedAt: created}
}

func outboxItems(sub, tenant string, seqs ...int64) []audit.OutboxItem {
	var out []audit.OutboxItem
	for _, s := range seqs {
		out = append(out, audit.OutboxItem{SubscriptionID: sub, Tenant: tenant, Seq: s, Doc: fmt.Appendf(nil, `{"seq":%d}`, s)})
	}
	return out
}

// makeChanges stores n new findings through Findings, each recording an
// opened change, and returns the changes recorded after after.
func makeChanges(t *testing.T, b Backend, tenant, prefix string, n int, after int64) []audit.Change {
	t.Helper()
	if b.Findings == nil {
		t.Skip("backend has no finding store to make changes with")
	}
	var fs []audit.Finding
	for i := range n {
		fs = append(fs, finding(tenant, fmt.Sprintf("%s%d", prefix, i), baseTime))
	}
	noErr(t, b.Findings.UpsertFindings(t.Context(), fs))
	cs, err := b.Alerts.ChangesAfter(t.Context(), after, 1000)
	noErr(t, err)
	if len(cs) != n {
		t.Fatalf("%d changes after %d, want %d: %+v", len(cs), after, n, cs)
	}
	return cs
}

// runAlerts tests the AlertStore contract.
func runAlerts(t *testing.T, open func(t *testing.T) Backend) {
	if open(t).Alerts == nil {
		t.Skip("backend has no alert store")
	}
	ctx := t.Context()
	// Each part has a backend of its own: the outbox is installation-wide.
	fresh := func(t *testing.T) (Backend, audit.AlertStore) {
		b := open(t)
		return b, b.Alerts
	}

	t.Run("Subscriptions", func(t *testing.T) {
		b, s := fresh(t)
		_ = b
		noErr(t, s.CreateSubscription(ctx, subscription("a", "s1", baseTime), 2))
		noErr(t, s.CreateSubscription(ctx, subscription("a", "s2", baseTime.Add(time.Minute)), 2))
		wantCode(t, s.CreateSubscription(ctx, subscription("a", "s3", baseTime), 2), audit.ECONFLICT)
		// Another tenant, and the installation ("" counts as one tenant), have their own limit.
		noErr(t, s.CreateSubscription(ctx, subscription("b", "s3", baseTime), 2))
		noErr(t, s.CreateSubscription(ctx, subscription("", "s4", baseTime), 1))
		wantCode(t, s.CreateSubscription(ctx, subscription("", "s5", baseTime), 1), audit.ECONFLICT)
		// Ids are unique across tenants.
		wantCode(t, s.CreateSubscription(ctx, subscription("c", "s1", baseTime), 2), audit.ECONFLICT)

		got, err := s.GetSubscription(ctx, "s1")
		noErr(t, err)
		sameJSON(t, "subscription", *got, subscription("a", "s1", baseTime))
		_, err = s.GetSubscription(ctx, "nope")
		wantCode(t, err, audit.ENOTFOUND)

		list, err := s.ListSubscriptions(ctx, "a", false)
		noErr(t, err)
		if len(list) != 2 || list[0].ID != "s1" || list[1].ID != "s2" {
			t.Fatalf("tenant a's subscriptions: %+v, want s1 then s2", list)
		}
		list, err = s.ListSubscriptions(ctx, "", false)
		noErr(t, err)
		if len(list) != 1 || list[0].ID != "s4" {
			t.Fatalf("installation-wide subscriptions: %+v, want s4", list)
		}
		list, err = s.ListSubscriptions(ctx, "", true)
		noErr(t, err)
		if len(list) != 4 {
			t.Fatalf("all subscriptions: %d, want 4", len(list))
		}
		list, err = s.ListSubscriptions(ctx, "z", false)
		noErr(t, err)
		if len(list) != 0 {
			t.Fatalf("unknown tenant's subscriptions: %+v", list)
		}

		upd := subscription("a", "s1", baseTime)
		upd.Name, upd.Disabled = "renamed", true
		noErr(t, s.UpdateSubscription(ctx, upd))
		got, err = s.GetSubscription(ctx, "s1")
		noErr(t, err)
		if got.Name != "renamed" || !got.Disabled {
			t.Fatalf("after update: %+v", got)
		}
		wantCode(t, s.UpdateSubscription(ctx, subscription("a", "nope", baseTime)), audit.ENOTFOUND)

		// Deleting deletes the deliveries.
		_, err = s.Enqueue(ctx, 0, outboxItems("s2", "a", 1), 10, 0, baseTime)
		noErr(t, err)
		ds, err := s.ListDeliveries(ctx, audit.DeliveryFilter{SubscriptionID: "s2"})
		noErr(t, err)
		if len(ds) != 1 {
			t.Fatalf("deliveries of s2: %d, want 1", len(ds))
		}
		noErr(t, s.DeleteSubscription(ctx, "s2"))
		_, err = s.GetSubscription(ctx, "s2")
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.GetDelivery(ctx, ds[0].ID)
		wantCode(t, err, audit.ENOTFOUND)
		wantCode(t, s.DeleteSubscription(ctx, "s2"), audit.ENOTFOUND)
		// The limit counts what is left.
		noErr(t, s.CreateSubscription(ctx, subscription("a", "s6", baseTime.Add(2*time.Minute)), 2))
	})

	t.Run("Outbox", func(t *testing.T) {
		b, s := fresh(t)
		_ = b
		noErr(t, s.CreateSubscription(ctx, subscription("a", "o1", baseTime), 0))
		t0 := baseTime.Add(time.Hour)
		res, err := s.Enqueue(ctx, 3, outboxItems("o1", "a", 1, 2, 3), 2, 0, t0)
		noErr(t, err)
		if res.Dropped != 0 {
			t.Fatalf("dropped %d", res.Dropped)
		}
		cur, err := s.AlertCursor(ctx)
		noErr(t, err)
		if cur != 3 {
			t.Fatalf("alert cursor = %d, want 3", cur)
		}
		// maxItems 2: one full delivery and one with the third item.
		open, err := s.OpenDeliveries(ctx, t0, 2, 10)
		noErr(t, err)
		if len(open) != 1 || open[0].Items != 2 || len(open[0].ItemDocs) != 2 || string(open[0].ItemDocs[0]) != `{"seq":1}` ||
			string(open[0].ItemDocs[1]) != `{"seq":2}` || open[0].Status != audit.DeliveryOpen || open[0].SubscriptionID != "o1" || open[0].Tenant != "a" {
			t.Fatalf("open deliveries holding maxItems: %+v", open)
		}
		full := open[0].ID
		open, err = s.OpenDeliveries(ctx, t0.Add(time.Second), 2, 10)
		noErr(t, err)
		if len(open) != 2 {
			t.Fatalf("open deliveries created before the cutoff: %d, want 2", len(open))
		}
		open, err = s.OpenDeliveries(ctx, t0.Add(time.Second), 2, 1)
		noErr(t, err)
		if len(open) != 1 {
			t.Fatalf("limit 1: %d deliveries", len(open))
		}
		// A later enqueue fills the open delivery that has room.
		_, err = s.Enqueue(ctx, 4, outboxItems("o1", "a", 4), 2, 0, t0.Add(time.Minute))
		noErr(t, err)
		open, err = s.OpenDeliveries(ctx, t0.Add(time.Hour), 2, 10)
		noErr(t, err)
		if len(open) != 2 || open[1].Items != 2 || string(open[1].ItemDocs[1]) != `{"seq":4}` {
			t.Fatalf("after a second enqueue: %+v", open)
		}
		second := open[1].ID

		// A stale caller's items are still enqueued, and the cursor does
		// not move back.
		_, err = s.Enqueue(ctx, 2, outboxItems("o1", "a", 5), 2, 0, t0.Add(2*time.Minute))
		noErr(t, err)
		if cur, err := s.AlertCursor(ctx); err != nil || cur != 4 {
			t.Fatalf("cursor after a stale enqueue = %d, %v; want 4 (it must not move back)", cur, err)
		}
		ds, err := s.ListDeliveries(ctx, audit.DeliveryFilter{SubscriptionID: "o1"})
		noErr(t, err)
		if len(ds) != 3 || ds[0].Items != 1 || ds[2].ID != full || ds[0].Body != nil {
			t.Fatalf("deliveries, newest first: %+v", ds)
		}

		// Sealing fixes the body and makes it pending, due now.
		noErr(t, s.SealDelivery(ctx, full, []byte(`[1,2]`), t0.Add(3*time.Minute)))
		wantCode(t, s.SealDelivery(ctx, full, []byte(`[1,2]`), t0.Add(3*time.Minute)), audit.ENOTFOUND)
		noErr(t, s.SealDelivery(ctx, second, []byte(`[3,4]`), t0.Add(4*time.Minute)))
		open, err = s.OpenDeliveries(ctx, t0.Add(time.Hour), 2, 10)
		noErr(t, err)
		if len(open) != 1 {
			t.Fatalf("open after sealing: %+v", open)
		}
		due, err := s.DueDeliveries(ctx, t0.Add(3*time.Minute), 10)
		noErr(t, err)
		if len(due) != 1 || due[0].ID != full || string(due[0].Body) != `[1,2]` || due[0].Status != audit.DeliveryPending {
			t.Fatalf("due: %+v", due)
		}
		due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 10)
		noErr(t, err)
		if len(due) != 2 || due[0].ID != full || due[1].ID != second {
			t.Fatalf("due, oldest due first: %+v", due)
		}
		due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 1)
		noErr(t, err)
		if len(due) != 1 {
			t.Fatalf("due with limit 1: %d", len(due))
		}

		// A failed attempt: pending again, due at NextAt.
		noErr(t, s.RecordAttempt(ctx, full, audit.AttemptResult{At: t0.Add(5 * time.Minute), NextAt: t0.Add(2 * time.Hour), StatusCode: 503, Error: "busy"}))
		d, err := s.GetDelivery(ctx, full)
		noErr(t, err)
		if d.Status != audit.DeliveryPending || d.Attempts != 1 || d.LastStatus != 503 || d.LastError != "busy" || !d.NextAt.Equal(t0.Add(2*time.Hour)) ||
			!d.RetryFrom.Equal(t0.Add(3*time.Minute)) || d.Body != nil {
			t.Fatalf("after a failed attempt: %+v", d)
		}
		due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 10)
		noErr(t, err)
		if len(due) != 1 || due[0].ID != second {
			t.Fatalf("due after a failed attempt: %+v", due)
		}
		noErr(t, s.Postpone(ctx, full, t0.Add(30*time.Minute)))
		d, err = s.GetDelivery(ctx, full)
		noErr(t, err)
		if d.Attempts != 1 || !d.NextAt.Equal(t0.Add(30*time.Minute)) {
			t.Fatalf("after postponing: %+v", d)
		}
		// Delivered.
		at := t0.Add(31 * time.Minute)
		noErr(t, s.RecordAttempt(ctx, full, audit.AttemptResult{At: at, Delivered: true, StatusCode: 200}))
		d, err = s.GetDelivery(ctx, full)
		noErr(t, err)
		if d.Status != audit.DeliveryDelivered || d.Attempts != 2 || d.DeliveredAt == nil || !d.DeliveredAt.Equal(at) {
			t.Fatalf("after delivery: %+v", d)
		}
		wantCode(t, s.RecordAttempt(ctx, full, audit.AttemptResult{At: at, Delivered: true}), audit.ENOTFOUND)
		_, err = s.ReplayDelivery(ctx, full, at)
		wantCode(t, err, audit.EINVALID)
		_, err = s.ReplayDelivery(ctx, "nope", at)
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.GetDelivery(ctx, "nope")
		wantCode(t, err, audit.ENOTFOUND)

		// Dead, then replayed: pending, due now, a fresh retry window.
		noErr(t, s.RecordAttempt(ctx, second, audit.AttemptResult{At: at, Dead: true, StatusCode: 410, Error: "gone"}))
		dead, err := s.ListDeliveries(ctx, audit.DeliveryFilter{SubscriptionID: "o1", Status: audit.DeliveryDead})
		noErr(t, err)
		if len(dead) != 1 || dead[0].ID != second {
			t.Fatalf("dead letters: %+v", dead)
		}
		replay := t0.Add(3 * time.Hour)
		r, err := s.ReplayDelivery(ctx, second, replay)
		noErr(t, err)
		if r.Status != audit.DeliveryPending || r.Attempts != 0 || !r.NextAt.Equal(replay) || !r.RetryFrom.Equal(replay) {
			t.Fatalf("replayed: %+v", r)
		}
		due, err = s.DueDeliveries(ctx, replay, 10)
		noErr(t, err)
		if len(due) != 1 || due[0].ID != second || string(due[0].Body) != `[3,4]` {
			t.Fatalf("due after replay: %+v", due)
		}
		_, err = s.ReplayDelivery(ctx, second, replay)
		wantCode(t, err, audit.EINVALID)
	})

	t.Run("OutboxBound", func(t *testing.T) {
		b, s := fresh(t)
		_ = b
		noErr(t, s.CreateSubscription(ctx, subscription("a", "q1", baseTime), 0))
		t0 := baseTime.Add(10 * time.Hour)
		_, err := s.Enqueue(ctx, 12, outboxItems("q1", "a", 10, 11, 12), 2, 0, t0)
		noErr(t, err)
		open, err := s.OpenDeliveries(ctx, t0.Add(time.Second), 2, 10)
		noErr(t, err)
		if len(open) != 2 {
			t.Fatalf("open: %+v", open)
		}
		noErr(t, s.SealDelivery(ctx, open[0].ID, []byte(`[10,11]`), t0))
		// 3 queued + 2 new > 4: the oldest pending delivery (2 items) goes to dead letters.
		res, err := s.Enqueue(ctx, 14, outboxItems("q1", "a", 13, 14), 2, 4, t0.Add(time.Minute))
		noErr(t, err)
		if res.Dropped != 2 {
			t.Fatalf("dropped %d, want 2", res.Dropped)
		}
		d, err := s.GetDelivery(ctx, open[0].ID)
		noErr(t, err)
		if d.Status != audit.DeliveryDead || d.LastError == "" {
			t.Fatalf("the oldest pending delivery: %+v", d)
		}
		// A dropped open delivery keeps its items: a replay reopens it.
		res, err = s.Enqueue(ctx, 15, outboxItems("q1", "a", 15), 2, 2, t0.Add(2*time.Minute))
		noErr(t, err)
		if res.Dropped != 2 {
			t.Fatalf("dropped %d, want 2 (the oldest open delivery)", res.Dropped)
		}
		d, err = s.GetDelivery(ctx, open[1].ID)
		noErr(t, err)
		if d.Status != audit.DeliveryDead {
			t.Fatalf("the oldest open delivery: %+v", d)
		}
		r, err := s.ReplayDelivery(ctx, open[1].ID, t0.Add(time.Hour))
		noErr(t, err)
		if r.Status != audit.DeliveryOpen {
			t.Fatalf("a replayed unsealed delivery is %s, want open", r.Status)
		}
		reopened, err := s.OpenDeliveries(ctx, t0.Add(time.Hour), 2, 10)
		noErr(t, err)
		found := false
		for _, o := range reopened {
			if o.ID == open[1].ID {
				found = len(o.ItemDocs) == 2 && string(o.ItemDocs[0]) == `{"seq":12}` && string(o.ItemDocs[1]) == `{"seq":13}`
			}
		}
		if !found {
			t.Fatalf("the reopened delivery with its items not among %+v", reopened)
		}
	})

	t.Run("PruneDeliveries", func(t *testing.T) {
		b, s := fresh(t)
		_ = b
		noErr(t, s.CreateSubscription(ctx, subscription("a", "p1", baseTime), 0))
		t0 := baseTime.Add(20 * time.Hour)
		var ids []string
		for i := range 4 {
			_, err := s.Enqueue(ctx, 20, outboxItems("p1", "a", int64(20+i)), 1, 0, t0.Add(time.Duration(i)*time.Minute))
			noErr(t, err)
		}
		open, err := s.OpenDeliveries(ctx, t0.Add(time.Hour), 1, 10)
		noErr(t, err)
		if len(open) != 4 {
			t.Fatalf("open: %d, want 4", len(open))
		}
		for _, o := range open {
			ids = append(ids, o.ID)
			noErr(t, s.SealDelivery(ctx, o.ID, []byte(`[]`), t0))
		}
		noErr(t, s.RecordAttempt(ctx, ids[0], audit.AttemptResult{At: t0, Delivered: true}))
		noErr(t, s.RecordAttempt(ctx, ids[1], audit.AttemptResult{At: t0.Add(2 * time.Hour), Delivered: true}))
		noErr(t, s.RecordAttempt(ctx, ids[2], audit.AttemptResult{At: t0, Dead: true}))
		noErr(t, s.RecordAttempt(ctx, ids[3], audit.AttemptResult{At: t0, Dead: true}))
		noErr(t, s.PruneDeliveries(ctx, t0.Add(time.Hour), 1))
		for i, want := range []bool{false, true, false, true} {
			_, err := s.GetDelivery(ctx, ids[i])
			if kept := err == nil; kept != want {
				t.Fatalf("delivery %d kept = %v, want %v (%v)", i, kept, want, err)
			}
		}
	})

	t.Run("Changes", func(t *testing.T) {
		b, s := fresh(t)
		_ = b
		cur, err := s.AlertCursor(ctx)
		noErr(t, err)
		cs := makeChanges(t, b, "a", "chf", 3, cur)
		for i, c := range cs {
			if c.Change != audit.ChangeOpened || c.Kind != audit.KindFinding || c.Tenant != "a" || c.EntityID != fmt.Sprintf("chf%d", i) ||
				c.Severity != audit.SeverityHigh || c.RuleID != "stuffing" || len(c.Doc) == 0 || c.At.IsZero() || (i > 0 && c.Seq <= cs[i-1].Seq) {
				t.Fatalf("change %d: %+v", i, c)
			}
		}
		some, err := s.ChangesAfter(ctx, cs[0].Seq, 1)
		noErr(t, err)
		if len(some) != 1 || some[0].Seq != cs[1].Seq {
			t.Fatalf("after the first, limit 1: %+v", some)
		}
		// Enqueue records the cursor and deletes the changes up to it.
		_, err = s.Enqueue(ctx, cs[1].Seq, nil, 10, 0, baseTime)
		noErr(t, err)
		cur, err = s.AlertCursor(ctx)
		noErr(t, err)
		if cur != cs[1].Seq {
			t.Fatalf("cursor = %d, want %d", cur, cs[1].Seq)
		}
		left, err := s.ChangesAfter(ctx, 0, 100)
		noErr(t, err)
		if len(left) != 1 || left[0].Seq != cs[2].Seq {
			t.Fatalf("changes left after enqueue: %+v", left)
		}
	})

	t.Run("ActionChanges", func(t *testing.T) {
		b, s := fresh(t)
		if b.Actions == nil {
			t.Skip("backend has no action store")
		}
		last, err := s.AlertCursor(ctx)
		noErr(t, err)
		a := audit.ResponseAction{ID: "act_c", Tenant: "a", Type: audit.RespRequireMFA, ActorID: "carol", RuleID: "stuffing",
			RequestedBy: "rule:stuffing", Severity: audit.SeverityCritical, CreatedAt: baseTime, UpdatedAt: baseTime}
		created, err := b.Actions.CreateAction(ctx, a)
		noErr(t, err)
		if !created {
			t.Fatal("action not created")
		}
		// Creating it again records no second change.
		_, err = b.Actions.CreateAction(ctx, a)
		noErr(t, err)
		cs, err := s.ChangesAfter(ctx, last, 100)
		noErr(t, err)
		if len(cs) != 1 || cs[0].Kind != audit.KindAction || cs[0].EntityID != "act_c" || cs[0].Tenant != "a" ||
			cs[0].Change != audit.ChangeOpened || cs[0].Severity != audit.SeverityCritical || cs[0].RuleID != "stuffing" || len(cs[0].Doc) == 0 {
			t.Fatalf("the action's change: %+v", cs)
		}
		// Enqueue records the cursor and deletes the change.
		_, err = s.Enqueue(ctx, cs[0].Seq, nil, 10, 0, baseTime)
		noErr(t, err)
		cur, err := s.AlertCursor(ctx)
		noErr(t, err)
		if cur != cs[0].Seq {
			t.Fatalf("cursor = %d, want %d", cur, cs[0].Seq)
		}
		cs, err = s.ChangesAfter(ctx, 0, 100)
		noErr(t, err)
		if len(cs) != 0 {
			t.Fatalf("changes left after enqueue: %+v", cs)
		}
	})
}

// runSIEM tests the SIEMStore contract.
func runSIEM(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.SIEM
	if s == nil {
		t.Skip("backend has no SIEM store")
	}
	ctx := t.Context()

	t.Run("Cursors", func(t *testing.T) {
		noErr(t, s.RegisterSIEMSinks(ctx, []string{"x", "y"}))
		last, err := s.LastChange(ctx)
		noErr(t, err)
		c, err := s.SIEMCursor(ctx, "x")
		noErr(t, err)
		if c != (audit.SIEMCursor{Sink: "x", Changes: last}) {
			t.Fatalf("new cursor: %+v", c)
		}
		_, err = s.SIEMCursor(ctx, "nope")
		wantCode(t, err, audit.ENOTFOUND)
		wantCode(t, s.CommitSIEMChanges(ctx, "nope", 1, 0), audit.ENOTFOUND)

		noErr(t, s.CommitSIEMChanges(ctx, "x", last+5, 2))
		noErr(t, s.CommitSIEMChanges(ctx, "x", last+3, 1)) // never backwards
		noErr(t, s.AddSIEMEventGap(ctx, "x", 7))
		noErr(t, s.AddSIEMEventGap(ctx, "x", 3))
		noErr(t, s.CommitSIEMEventGap(ctx, "x", 10))
		noErr(t, s.CommitSIEMEventGap(ctx, "x", 4))
		c, err = s.SIEMCursor(ctx, "x")
		noErr(t, err)
		if c.Changes != last+5 || c.ChangesReported != 2 || c.EventsDropped != 10 || c.EventsReported != 10 {
			t.Fatalf("after commits: %+v", c)
		}
		// Registering again keeps a known sink's position and forgets the unnamed.
		noErr(t, s.RegisterSIEMSinks(ctx, []string{"x", "z"}))
		c, err = s.SIEMCursor(ctx, "x")
		noErr(t, err)
		if c.Changes != last+5 {
			t.Fatalf("re-registered cursor: %+v", c)
		}
		_, err = s.SIEMCursor(ctx, "y")
		wantCode(t, err, audit.ENOTFOUND)
		noErr(t, s.RegisterSIEMSinks(ctx, nil))
		_, err = s.SIEMCursor(ctx, "x")
		wantCode(t, err, audit.ENOTFOUND)
	})

	t.Run("Prune", func(t *testing.T) {
		if b.Alerts == nil {
			t.Skip("backend has no alert store")
		}
		noErr(t, s.RegisterSIEMSinks(ctx, nil))
		before, err := s.LastChange(ctx)
		noErr(t, err)
		noErr(t, s.RegisterSIEMSinks(ctx, []string{"early"}))
		cs := makeChanges(t, b, "a", "sf", 5, before)
		last, err := s.LastChange(ctx)
		noErr(t, err)
		if last != cs[4].Seq {
			t.Fatalf("last change = %d, want %d", last, cs[4].Seq)
		}
		noErr(t, s.RegisterSIEMSinks(ctx, []string{"early", "late"}))
		late, err := s.SIEMCursor(ctx, "late")
		noErr(t, err)
		if late.Changes != last {
			t.Fatalf("a new sink starts at %d, want the last change %d", late.Changes, last)
		}
		got, err := s.ChangesAfter(ctx, before, 100)
		noErr(t, err)
		if len(got) != 5 || got[0].Seq != cs[0].Seq {
			t.Fatalf("ChangesAfter: %+v", got)
		}

		// Passed by every holder: early has passed the first two; webhooks not counted.
		noErr(t, s.CommitSIEMChanges(ctx, "early", cs[1].Seq, 0))
		res, err := s.PruneChanges(ctx, false, 1000, time.Time{})
		noErr(t, err)
		if res.Deleted != 2 || len(res.Skipped) != 0 {
			t.Fatalf("prune of passed changes: %+v", res)
		}
		// The webhook fan-out, counted, has passed nothing of these.
		res, err = s.PruneChanges(ctx, true, 1000, time.Time{})
		noErr(t, err)
		if res.Deleted != 0 {
			t.Fatalf("prune holding for webhooks: %+v", res)
		}
		// The bound: only the newest change stays; early and the webhooks each skip two.
		res, err = s.PruneChanges(ctx, true, 1, time.Time{})
		noErr(t, err)
		if res.Deleted != 2 || res.Skipped["early"] != 2 || res.Skipped[webhookHolder] != 2 {
			t.Fatalf("prune beyond the bound: %+v", res)
		}
		c, err := s.SIEMCursor(ctx, "early")
		noErr(t, err)
		if c.Changes != cs[3].Seq || c.ChangesDropped != 2 {
			t.Fatalf("lagging sink after the bound: %+v", c)
		}
		got, err = s.ChangesAfter(ctx, 0, 100)
		noErr(t, err)
		if len(got) != 1 || got[0].Seq != cs[4].Seq {
			t.Fatalf("changes left: %+v", got)
		}
		// The newest Seq survives its change's deletion.
		noErr(t, s.RegisterSIEMSinks(ctx, nil))
		res, err = s.PruneChanges(ctx, false, 1000, time.Time{})
		noErr(t, err)
		if res.Deleted != 1 {
			t.Fatalf("prune without holders: %+v", res)
		}
		if l, err := s.LastChange(ctx); err != nil || l != last {
			t.Fatalf("last change after deletion = %d, %v; want %d", l, err, last)
		}
	})

	t.Run("EnqueueKeepsSinksChanges", func(t *testing.T) {
		if b.Alerts == nil {
			t.Skip("backend has no alert store")
		}
		noErr(t, s.RegisterSIEMSinks(ctx, []string{"slow"}))
		last, err := s.LastChange(ctx)
		noErr(t, err)
		cs := makeChanges(t, b, "a", "kf", 2, last)
		_, err = b.Alerts.Enqueue(ctx, cs[1].Seq, nil, 10, 0, baseTime)
		noErr(t, err)
		got, err := s.ChangesAfter(ctx, last, 100)
		noErr(t, err)
		if len(got) != 2 {
			t.Fatalf("changes a sink has not passed were deleted: %+v", got)
		}
	})
}

// webhookHolder is the name PruneChanges counts the webhook fan-out under.
const webhookHolder = "webhooks"
