package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

// TestRetentionRunCommand: a dry run shows what would go and deletes
// nothing; the run deletes it; the next run finds nothing more.
func TestRetentionRunCommand(t *testing.T) {
	env := startServer(t)
	ctx := t.Context()
	op, err := client.New("http://"+env["VIGIL_SERVER_ADDR"], client.WithAPIKey(env["VIGIL_API_KEY"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateTenant(ctx, client.CreateTenantRequest{ID: "short", RetentionDays: 30, MaxEventAgeDays: 90}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().AddDate(0, 0, -60)
	if _, err := op.Send(ctx,
		client.Event{ID: "old-1", Tenant: "short", Action: "app.report.viewed", Time: old, Actor: client.Actor{ID: "alice"}},
		client.Event{ID: "old-2", Tenant: "short", Action: "app.report.viewed", Time: old.Add(time.Minute), Actor: client.Actor{ID: "bob"}},
		client.Event{ID: "new-1", Tenant: "short", Action: "app.report.viewed", Time: time.Now().UTC().Add(-time.Hour), Actor: client.Actor{ID: "alice"}},
	); err != nil {
		t.Fatal(err)
	}
	short := op.ForTenant("short")
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := short.SearchEvents(ctx, client.SearchParams{Action: "app.report.viewed"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 events stored after 30s", len(page.Events))
		}
		time.Sleep(50 * time.Millisecond)
	}
	row := regexp.MustCompile(`(?m)^short\s+30d\s+\d{4}-\d\d-\d\d\s+(\d+)\s+0\s+0\s*$`)
	r := run(t, env, "", "retention", "run", "--tenant", "short", "--dry-run")
	if m := row.FindStringSubmatch(r.stdout); r.code != 0 || !strings.Contains(r.stdout, "WOULD DELETE EVENTS") || m == nil || m[1] != "2" {
		t.Fatalf("dry run: %+v", r)
	}
	r = run(t, env, "", "retention", "run", "--tenant", "short")
	if m := row.FindStringSubmatch(r.stdout); r.code != 0 || !strings.Contains(r.stdout, "DELETED EVENTS") || m == nil || m[1] != "2" {
		t.Fatalf("run: %+v", r)
	}
	page, err := short.SearchEvents(ctx, client.SearchParams{Action: "app.report.viewed"})
	if err != nil || len(page.Events) != 1 || page.Events[0].ID != "new-1" {
		t.Fatalf("after the run: %+v %v", page, err)
	}
	r = run(t, env, "", "retention", "run", "--tenant", "short", "--format", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"events": 0`) {
		t.Fatalf("second run: %+v", r)
	}
	if r := run(t, env, "", "retention", "run", "extra"); r.code == 0 {
		t.Fatalf("a positional argument was accepted: %+v", r)
	}
}
