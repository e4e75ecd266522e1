package cli_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/cli"
	"github.com/vigilhq/vigil/internal/config"
)

// TestImportCommand imports an Okta file through the API: a bad record is
// reported with its line and field and the rest are stored, progress shows
// records, rate and percentage, a second run finds only duplicates, stdin
// works, and an unknown format is a usage error.
func TestImportCommand(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "error"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	env := map[string]string{"VIGIL_SERVER": a.Addr(), "VIGIL_API_KEY": a.BootstrapKey}
	if err := a.Stores().Tenants.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC()
	var b strings.Builder
	for i := range 5 {
		if i == 2 {
			b.WriteString(`{"uuid":"bad","eventType":"user.session.start","published":"not a time"}` + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"uuid":"u-%d","published":%q,"eventType":"user.account.update_password","actor":{"alternateId":"u%d@example.com"}}`+"\n",
			i, at.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i)
	}
	file := filepath.Join(t.TempDir(), "okta.ndjson")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, env, "", "import", "--tenant", "acme", "--batch", "2", "--progress-every", "1ns", "okta", file)
	if r.code != cli.ExitFail || !strings.Contains(r.stdout, "4 accepted, 0 duplicates, 1 rejected") ||
		!strings.Contains(r.stderr, "line 3 rejected (published)") || !strings.Contains(r.stderr, "sent 5 records (100%)") ||
		!strings.Contains(r.stderr, "records/s") {
		t.Fatalf("import: %+v", r)
	}
	r = run(t, env, b.String(), "import", "--tenant", "acme", "okta", "-")
	if !strings.Contains(r.stdout, "0 accepted, 4 duplicates, 1 rejected") {
		t.Fatalf("re-import from stdin: %+v", r)
	}
	good := strings.ReplaceAll(b.String(), `{"uuid":"bad","eventType":"user.session.start","published":"not a time"}`+"\n", "")
	if r := run(t, env, "["+strings.ReplaceAll(strings.TrimSpace(good), "\n", ",\n")+"]", "import", "--tenant", "acme", "--quiet", "okta", "-"); r.code != 0 || r.stderr != "" ||
		!strings.Contains(r.stdout, "0 accepted, 4 duplicates, 0 rejected") {
		t.Fatalf("a JSON array: %+v", r)
	}
	// --backfill marks the records as history through ?backfill= on the route.
	hist := fmt.Sprintf(`{"uuid":"u-hist","published":%q,"eventType":"user.account.update_password","actor":{"alternateId":"h@example.com"}}`, at.Format(time.RFC3339))
	if r := run(t, env, hist, "import", "--tenant", "acme", "--quiet", "--backfill", "okta", "-"); r.code != 0 {
		t.Fatalf("--backfill: %+v", r)
	}
	ev := storedEvent(t, a, "acme", "okta:u-hist")
	if imp, _ := ev.Metadata["import"].(map[string]any); imp["backfill"] != "silent" || imp["format"] != "okta" {
		t.Fatalf("backfill event: %+v, %v", ev, err)
	}
	if r := run(t, env, "", "import", "splunk", file); r.code != cli.ExitUsage {
		t.Fatalf("unknown format: %+v", r)
	}
}

// TestImportMapped imports the RBA login sample (CSV) with the example
// mapping file, and an NDJSON file with a mapping that has no id field:
// the batches go with the mapping to POST /v1/import/csv|ndjson, where
// the server applies it; rejected rows are reported with their line and field, a re-import finds
// only duplicates (ids from the id column, or from a hash of the record),
// and a format/mapping mismatch is a usage error.
func TestImportMapped(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "error"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	env := map[string]string{"VIGIL_SERVER": a.Addr(), "VIGIL_API_KEY": a.BootstrapKey}
	tn := tenant("acme")
	tn.MaxEventAgeDays = 20 * 365 // the sample is from 2020: a backfill allowance
	if err := a.Stores().Tenants.CreateTenant(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	const sample = "../importer/mapping/testdata/rba-dataset-head-200.csv"
	const rbaMap = "../../examples/import/rba-dataset.yaml"
	r := run(t, env, "", "import", "--tenant", "acme", "--batch", "64", "--progress-every", "1ns", "--mapping", rbaMap, "csv", sample)
	if r.code != 0 || !strings.Contains(r.stdout, "200 accepted, 0 duplicates, 0 rejected") ||
		!strings.Contains(r.stderr, "sent 200 records (100%)") || !strings.Contains(r.stderr, "records/s") {
		t.Fatalf("import csv: %+v", r)
	}
	if r := run(t, env, "", "import", "--tenant", "acme", "--quiet", "--mapping", rbaMap, "csv", sample); r.code != 0 ||
		!strings.Contains(r.stdout, "0 accepted, 200 duplicates, 0 rejected") {
		t.Fatalf("re-import csv: %+v", r)
	}
	ev := storedEvent(t, a, "acme", "csv:rba:0")
	if ev.Action != "auth.login.failure" || ev.Reason != "unknown_user" {
		t.Fatalf("stored event csv:rba:0: %+v", ev)
	}
	if imp, _ := ev.Metadata["import"].(map[string]any); imp["format"] != "csv:rba" || imp["file"] != "rba-dataset-head-200.csv" {
		t.Fatalf("metadata.import: %+v", ev.Metadata["import"])
	}

	// Bad rows: a wrong time, a wrong field count, an unmapped action; the
	// good row after them is stored.
	head, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(head), "\n")
	bad := header + "\n" +
		"9001,yesterday,u1,,10.0.0.1,NO,-,-,1,UA,b,o,d,True,False,False\n" +
		"9002,2020-02-03 12:43:30.772,u1\n" +
		"9003,2020-02-03 12:43:30.772,u1,,10.0.0.1,NO,-,-,1,UA,b,o,d,Maybe,False,False\n" +
		"9004,2020-02-03 12:43:31.772,u1,,10.0.0.1,NO,-,-,1,UA,b,o,d,True,False,False\n"
	r = run(t, env, bad, "import", "--tenant", "acme", "--quiet", "--mapping", rbaMap, "csv", "-")
	if r.code != cli.ExitFail || !strings.Contains(r.stdout, "1 accepted, 0 duplicates, 3 rejected") ||
		!strings.Contains(r.stderr, "line 2 rejected (Login Timestamp)") || !strings.Contains(r.stderr, "line 3 rejected: the row has 3 fields, the header 16") ||
		!strings.Contains(r.stderr, "line 4 rejected (Login Successful)") {
		t.Fatalf("bad rows: %+v", r)
	}

	// NDJSON with a mapping without an id: ids hash the record.
	dir := t.TempDir()
	ndMap := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(ndMap, []byte(`name: app
format: ndjson
time: {from: ts, layout: unix}
action: {from: kind, map: {login: auth.login.success, fail: auth.login.failure}}
fields:
  actor.id: {from: user.id}
  context.ip: {from: ip}
  context.auth_method: {value: password, only: [auth.login.success]}
  context.session_id: {from: sid, only: [auth.login.success]}
  reason: {value: invalid_password, only: [auth.login.failure]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Hour).Unix()
	nd := fmt.Sprintf(`{"ts":%d,"kind":"login","user":{"id":"u1"},"ip":"192.0.2.1","sid":"s1"}
{"ts":%d,"kind":"fail","user":{"id":"u2"},"ip":"192.0.2.2"}
{"ts":%d,"kind":"fail","user":{"id":"u2"},"ip":"not an ip"}
`, now, now+1, now+2)
	ndFile := filepath.Join(dir, "app.ndjson")
	if err := os.WriteFile(ndFile, []byte(nd), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, env, "", "import", "--tenant", "acme", "--quiet", "--mapping", ndMap, "ndjson", ndFile)
	if r.code != cli.ExitFail || !strings.Contains(r.stdout, "2 accepted, 0 duplicates, 1 rejected") || !strings.Contains(r.stderr, "line 3 rejected (ip)") {
		t.Fatalf("import ndjson: %+v", r)
	}
	if r := run(t, env, "", "import", "--tenant", "acme", "--quiet", "--mapping", ndMap, "ndjson", ndFile); !strings.Contains(r.stdout, "0 accepted, 2 duplicates, 1 rejected") {
		t.Fatalf("re-import ndjson: %+v", r)
	}

	for name, args := range map[string][]string{
		"csv without a mapping":    {"csv", sample},
		"a mapping for a vendor":   {"--mapping", rbaMap, "okta", sample},
		"a csv mapping for ndjson": {"--mapping", rbaMap, "ndjson", ndFile},
	} {
		if r := run(t, env, "", append([]string{"import", "--tenant", "acme"}, args...)...); r.code != cli.ExitUsage {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

// storedEvent waits until the running server's pipeline has stored the
// event (App.Drain is only for a server that is not running).
func storedEvent(t *testing.T, a *app.App, tenant, id string) *audit.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev, err := a.Stores().Events.GetEvent(t.Context(), tenant, id)
		if err == nil {
			return ev
		}
		if audit.ErrorCode(err) != audit.ENOTFOUND || time.Now().After(deadline) {
			t.Fatalf("event %s of %s: %v", id, tenant, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
