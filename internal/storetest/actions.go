package storetest

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func runActions(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.Actions
	if s == nil {
		t.Skip("backend has no action store")
	}
	ctx := t.Context()
	a := audit.ResponseAction{ID: "act_1", Tenant: "a", Type: audit.RespRevokeSessions, ActorID: "alice", RequestedBy: "key:k1",
		Severity: audit.SeverityHigh, Status: audit.ActionRequested, CreatedAt: baseTime, UpdatedAt: baseTime}
	created, err := s.CreateAction(ctx, a)
	noErr(t, err)
	if !created {
		t.Fatal("a new action was not created")
	}
	again := a
	again.Reason = "changed"
	if created, err := s.CreateAction(ctx, again); err != nil || created {
		t.Fatalf("creating an existing action: created %v, %v", created, err)
	}
	bad := a
	bad.ID, bad.Type = "act_bad", "explode"
	_, err = s.CreateAction(ctx, bad)
	wantCode(t, err, audit.EINVALID)

	later := a
	later.ID, later.Type, later.CreatedAt = "act_2", audit.RespLockAccount, baseTime.Add(time.Minute)
	_, err = s.CreateAction(ctx, later)
	noErr(t, err)
	other := a
	other.Tenant = "b"
	_, err = s.CreateAction(ctx, other)
	noErr(t, err)

	list, err := s.ListActions(ctx, "a", 10)
	noErr(t, err)
	if len(list) != 2 || list[0].ID != "act_2" || list[1].ID != "act_1" || list[1].Reason != "" {
		t.Fatalf("list = %+v, want act_2 then act_1 (unchanged by the second create)", list)
	}
	got, err := s.GetAction(ctx, "a", "act_1")
	noErr(t, err)
	if got.Status != audit.ActionRequested || got.ActorID != "alice" {
		t.Fatalf("get = %+v", got)
	}
	_, err = s.GetAction(ctx, "c", "act_1")
	wantCode(t, err, audit.ENOTFOUND)
	_, err = s.UpdateAction(ctx, "c", "act_1", audit.ActionSucceeded, "", baseTime)
	wantCode(t, err, audit.ENOTFOUND)
	_, err = s.UpdateAction(ctx, "a", "act_1", "done", "", baseTime)
	wantCode(t, err, audit.EINVALID)

	upd, err := s.UpdateAction(ctx, "a", "act_1", audit.ActionAcknowledged, "", baseTime.Add(time.Minute))
	noErr(t, err)
	if upd.Status != audit.ActionAcknowledged {
		t.Fatalf("after ack: %+v", upd)
	}
	_, err = s.UpdateAction(ctx, "a", "act_1", audit.ActionFailed, "account not found", baseTime.Add(2*time.Minute))
	noErr(t, err)
	upd, err = s.UpdateAction(ctx, "a", "act_1", audit.ActionAcknowledged, "", baseTime.Add(3*time.Minute))
	noErr(t, err)
	if upd.Status != audit.ActionFailed || upd.Message != "account not found" {
		t.Fatalf("a late acknowledgement changed the outcome: %+v", upd)
	}
	if got, _ := s.GetAction(ctx, "b", "act_1"); got.Status != audit.ActionRequested {
		t.Fatalf("another tenant's action changed: %+v", got)
	}
}
