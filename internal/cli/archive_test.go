package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/cli"
	"github.com/vigilhq/vigil/internal/config"
)

// TestArchiveBeforeRetention: with retention.archive.dir set, a retention
// run archives the events it deletes; "archive list" shows the day and
// "archive restore" brings its events back, verified.
func TestArchiveBeforeRetention(t *testing.T) {
	dir := t.TempDir()
	env := startServer(t, func(c *config.Config) { c.Retention.Archive.Dir = dir })
	ctx := t.Context()
	op, err := client.New("http://"+env["VIGIL_SERVER_ADDR"], client.WithAPIKey(env["VIGIL_API_KEY"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateTenant(ctx, client.CreateTenantRequest{ID: "short", RetentionDays: 30, MaxEventAgeDays: 90}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().AddDate(0, 0, -60).Truncate(24 * time.Hour).Add(10 * time.Hour)
	if _, err := op.Send(ctx,
		client.Event{ID: "old-1", Tenant: "short", Action: "app.report.viewed", Time: old, Actor: client.Actor{ID: "alice"}},
		client.Event{ID: "old-2", Tenant: "short", Action: "app.report.viewed", Time: old.Add(time.Minute), Actor: client.Actor{ID: "bob"}},
		client.Event{ID: "new-1", Tenant: "short", Action: "app.report.viewed", Time: time.Now().UTC().Add(-time.Hour), Actor: client.Actor{ID: "alice"}},
	); err != nil {
		t.Fatal(err)
	}
	short := op.ForTenant("short")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page, err := short.SearchEvents(ctx, client.SearchParams{Action: "app.report.viewed"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("events not stored")
		}
	}
	if r := run(t, env, "", "retention", "run", "--tenant", "short", "--format", "json"); r.code != 0 || !strings.Contains(r.stdout, `"archived": 2`) || !strings.Contains(r.stdout, `"events": 2`) {
		t.Fatalf("retention run: %+v", r)
	}

	cliEnv := map[string]string{"VIGIL_RETENTION_ARCHIVE_DIR": dir}
	day := old.Format(time.DateOnly)
	if r := run(t, cliEnv, "", "archive", "list"); r.code != 0 || strings.TrimSpace(r.stdout) != "short/"+day {
		t.Fatalf("archive list: %+v", r)
	}
	out := filepath.Join(t.TempDir(), "day.ndjson")
	r := run(t, cliEnv, "", "archive", "restore", "short", day, "--out", out)
	b, _ := os.ReadFile(out)
	if r.code != 0 || !strings.Contains(r.stderr, "restored 2 events") || strings.Count(string(b), "\n") != 2 ||
		!strings.Contains(string(b), `"id":"old-1"`) || !strings.Contains(string(b), `"id":"old-2"`) {
		t.Fatalf("restore: %+v\n%s", r, b)
	}
	if !strings.Contains(string(b), `"received_at"`) {
		t.Fatalf("restore dropped the stored fields:\n%s", b)
	}
	// Restored as input, a day can be sent to a server again.
	r = run(t, cliEnv, "", "archive", "restore", "short", day, "--out", out, "--as-input")
	b, _ = os.ReadFile(out)
	if r.code != 0 || strings.Contains(string(b), `"received_at"`) {
		t.Fatalf("restore --as-input: %+v\n%s", r, b)
	}
	// On the same server they are duplicates (their idempotency keys are
	// newer than the cutoff); a scratch server takes them.
	if r := run(t, env, string(b), "events", "send", "--tenant", "short"); r.code != 0 || !strings.Contains(r.stdout, "2 duplicates") {
		t.Fatalf("send the restored day back: %+v", r)
	}
	scratch := startServer(t)
	sop, err := client.New("http://"+scratch["VIGIL_SERVER_ADDR"], client.WithAPIKey(scratch["VIGIL_API_KEY"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sop.CreateTenant(ctx, client.CreateTenantRequest{ID: "short", MaxEventAgeDays: 90}); err != nil {
		t.Fatal(err)
	}
	if r := run(t, scratch, string(b), "events", "send", "--tenant", "short"); r.code != 0 || !strings.Contains(r.stdout, "2 accepted") {
		t.Fatalf("send the restored day: %+v", r)
	}

	if r := run(t, map[string]string{}, "", "archive", "list"); r.code != cli.ExitFail || !strings.Contains(r.stderr, "retention.archive") {
		t.Fatalf("no archive configured: %+v", r)
	}
	if r := run(t, cliEnv, "", "archive", "restore", "short", "2001-01-01"); r.code != cli.ExitFail || !strings.Contains(r.stderr, "no archive") {
		t.Fatalf("a day never archived: %+v", r)
	}
}
