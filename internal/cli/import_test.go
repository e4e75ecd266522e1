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
	if r := run(t, env, "", "import", "splunk", file); r.code != cli.ExitUsage {
		t.Fatalf("unknown format: %+v", r)
	}
}
