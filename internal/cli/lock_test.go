package cli_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/cli"
	"github.com/vigilhq/vigil/internal/config"
)

// TestLocalCommandsRefusedWhileServing: a server holds its data directory,
// so a second server and the commands that open the directory locally are
// refused with a message naming the directory and the way out, instead of
// starting a second pipeline on the same stream.
func TestLocalCommandsRefusedWhileServing(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = dir
	cfg.Log.Level = "error"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	env := map[string]string{"VIGIL_STORAGE_SQLITE_DIR": dir}
	for _, args := range [][]string{
		{"serve", "--addr", "127.0.0.1:0"},
		{"keys", "create", "--operator"},
		{"tenants", "list"},
		{"migrate"},
	} {
		r := run(t, env, "", args...)
		if r.code != cli.ExitFail || !strings.Contains(r.stderr, dir) || !strings.Contains(r.stderr, "in use by another Vigil process") {
			t.Errorf("%s while a server holds the directory: %+v", strings.Join(args, " "), r)
		}
	}
	cancel()
	<-done // the server has closed its stores (a cancel during start may end Run with an error)
	if r := run(t, env, "", "tenants", "list"); r.code != 0 {
		t.Fatalf("tenants list after the server stopped: %+v", r)
	}
}
