package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// TestBootstrapKeyFirstStartOnly: the first operator key goes to a 0600
// file in the data directory whose path is logged, never into the log
// stream (stderr here is no terminal, so nothing else prints it); and it is
// made on first start only: after every operator key is revoked, a restart
// mints none. Before, the key was printed into the stderr log stream at
// every start where all operator keys were revoked.
func TestBootstrapKeyFirstStartOnly(t *testing.T) {
	dir := t.TempDir()
	start := func() (*app.App, *bytes.Buffer) {
		t.Helper()
		cfg := config.Default()
		cfg.Server.Addr = "127.0.0.1:0"
		cfg.Storage.SQLite.Dir = dir
		var stderr bytes.Buffer
		a, err := app.New(t.Context(), cfg, app.Options{Stderr: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		return a, &stderr
	}
	stop := func(a *app.App) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// Run with a cancelled context only shuts down (its pipeline may
		// report the cancellation); what matters is that the store closes.
		if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}

	a, stderr := start()
	key := a.BootstrapKey
	if key == "" {
		t.Fatal("no operator key on first start")
	}
	path := filepath.Join(dir, app.BootstrapKeyFile)
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != key {
		t.Fatalf("key file: %q %v", b, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	if strings.Contains(stderr.String(), "vgl_") || !strings.Contains(stderr.String(), path) {
		t.Fatalf("stderr (the log stream) must name the file, not the key:\n%s", stderr)
	}
	id, _, _ := audit.ParseKey(key)
	if err := a.Stores().Keys.RevokeKey(t.Context(), "", id, time.Now()); err != nil {
		t.Fatal(err)
	}
	stop(a)

	a, stderr = start()
	if a.BootstrapKey != "" || strings.Contains(stderr.String(), "vgl_") {
		t.Fatalf("a restart with every operator key revoked minted one: %q\n%s", a.BootstrapKey, stderr)
	}
	stop(a)
}
