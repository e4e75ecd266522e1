package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/retention"
	"github.com/vigilhq/vigil/internal/sqlite"
)

func TestCutoffIsWholeUTCDays(t *testing.T) {
	now := time.Date(2026, 3, 10, 17, 45, 0, 0, time.FixedZone("X", 5*3600))
	for _, c := range []struct {
		days int
		want string
	}{
		{30, "2026-02-08T00:00:00Z"},
		{1, "2026-03-09T00:00:00Z"},
		{0, "2025-02-03T00:00:00Z"}, // unset: the default 400 days
	} {
		if got := retention.Cutoff(now, c.days).Format(time.RFC3339); got != c.want {
			t.Errorf("Cutoff(%s, %d) = %s, want %s", now, c.days, got, c.want)
		}
	}
}

// failing fails one tenant's purge and passes the others to the store.
type failing struct {
	audit.Retention
	tenant string
}

func (f failing) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == f.tenant {
		return 0, errors.New("disk on fire")
	}
	return f.Retention.Purge(ctx, tenant, before)
}

// TestOneTenantsFailureDoesNotStopTheOthers runs retention over three
// tenants of a real store where the middle one's purge fails.
func TestOneTenantsFailureDoesNotStopTheOthers(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for _, id := range []string{"a", "b", "c"} {
		if err := db.CreateTenant(ctx, audit.Tenant{ID: id, RetentionDays: 10, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for i, age := range []int{20, 2} {
			evs = append(evs, audit.Event{ID: id + string(rune('0'+i)), Tenant: id, Action: "app.x", Time: now.AddDate(0, 0, -age),
				ReceivedAt: now, Actor: audit.Actor{ID: "u"}})
		}
	}
	if err := db.Events().InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var recorded []string
	j, err := retention.New(retention.Options{
		Tenants: db, Events: failing{db, "b"}, Planner: db, Findings: db, Now: func() time.Time { return now },
		Record: func(_ context.Context, ev *audit.Event) error {
			recorded = append(recorded, ev.Tenant)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	reports, err := j.RunOnce(ctx, "", false)
	if err == nil || !strings.Contains(err.Error(), "tenant b") {
		t.Fatalf("error %v, want tenant b's failure", err)
	}
	if len(reports) != 3 || reports[0].Events != 1 || reports[1].Error == "" || reports[2].Events != 1 {
		t.Fatalf("reports: %+v", reports)
	}
	if strings.Join(recorded, ",") != "a,c" {
		t.Fatalf("purge records for %v, want a and c", recorded)
	}
	if _, err := j.RunOnce(ctx, "nobody", false); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Fatalf("unknown tenant: %v", err)
	}
}

// TestNothingIsDeletedUnlessArchived: when the archive fails, the tenant's
// events stay (and the error says so); when it works, the archived count
// is reported and recorded.
func TestNothingIsDeletedUnlessArchived(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := db.CreateTenant(ctx, audit.Tenant{ID: "a", RetentionDays: 10, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.Events().InsertEvents(ctx, []audit.Event{
		{ID: "old", Tenant: "a", Action: "app.x", Time: now.AddDate(0, 0, -20), ReceivedAt: now, Actor: audit.Actor{ID: "u"}},
		{ID: "new", Tenant: "a", Action: "app.x", Time: now.AddDate(0, 0, -2), ReceivedAt: now, Actor: audit.Actor{ID: "u"}},
	}); err != nil {
		t.Fatal(err)
	}
	broken := true
	var recorded []*audit.Event
	j, err := retention.New(retention.Options{Tenants: db, Events: db, Now: func() time.Time { return now },
		Archive: func(_ context.Context, tenant string, before time.Time) (int64, error) {
			if broken {
				return 0, errors.New("bucket unreachable")
			}
			return 1, nil
		},
		Record: func(_ context.Context, ev *audit.Event) error { recorded = append(recorded, ev); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	reps, err := j.RunOnce(ctx, "a", false)
	if err == nil || !strings.Contains(err.Error(), "nothing was deleted") || reps[0].Events != 0 {
		t.Fatalf("with the archive down: %+v %v", reps, err)
	}
	if _, err := db.Events().GetEvent(ctx, "a", "old"); err != nil {
		t.Fatalf("an event was deleted without being archived: %v", err)
	}
	broken = false
	reps, err = j.RunOnce(ctx, "a", false)
	if err != nil || reps[0].Events != 1 || reps[0].Archived != 1 {
		t.Fatalf("with the archive up: %+v %v", reps, err)
	}
	if len(recorded) != 1 || recorded[0].Metadata["archived"] != int64(1) {
		t.Fatalf("purge record %+v", recorded)
	}
}
