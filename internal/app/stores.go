package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// Stores are the opened storage adapters, by role.
type Stores struct {
	Stream   audit.EventStream
	Events   audit.EventStore
	Tenants  audit.TenantStore
	Keys     audit.KeyStore
	Findings audit.FindingStore
	// Incidents keeps the detection engine's incidents.
	Incidents audit.IncidentStore
	State     audit.StateStore
	Rules     audit.RuleStore
	// Viewers keeps viewer-token records; Saved the console's saved searches.
	Viewers audit.ViewerTokenStore
	Saved   audit.SavedSearchStore
	// Alerts keeps webhooks and their outbox; Actions the response actions
	// they deliver.
	Alerts  audit.AlertStore
	Actions audit.ActionStore
	// Query runs investigation queries and exports; nil when the backend
	// has no query engine.
	Query audit.QueryRunner
	// Integrity keeps hash chains and signed statements.
	Integrity audit.IntegrityStore
	// Retention, RetentionPlanner and FindingRetention are what the
	// retention job deletes with; nil when the backend cannot.
	Retention        audit.Retention
	RetentionPlanner audit.RetentionPlanner
	FindingRetention audit.FindingRetention
	Ping             func(ctx context.Context) error
	// Ready is the cheap readiness check (can the store take writes);
	// it must not wait on connections that queries hold.
	Ready    func(ctx context.Context) error
	DiskSize func() (int64, error)
	Close    func() error
	// node is set for a serving node that runs active/standby (the
	// PostgreSQL store with the stream on NATS).
	node *clusterNode
}

// OpenStores opens the configured backend for a serving node.
func OpenStores(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*Stores, error) {
	return openStores(ctx, cfg, log, now, true, false)
}

// openStores opens the configured backend. serving is false for one-shot
// commands, which need no ingest stream and may run beside a serving node;
// migrate applies pending PostgreSQL migrations whatever auto_migrate says
// (the embedded store always migrates at open).
func openStores(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time, serving, migrate bool) (*Stores, error) {
	switch cfg.Storage.Driver {
	case "postgres":
		return openPostgres(ctx, cfg, log, now, serving, migrate)
	case "sqlite":
		db, err := sqlite.Open(ctx, sqlite.Options{
			Dir: cfg.Storage.SQLite.Dir, Logger: log, Now: now,
			MaxBacklog:        int64(cfg.Ingest.MaxBacklog) * 2,
			MaxOpenPartitions: cfg.Storage.SQLite.MaxOpenPartitions,
			SealAfter:         sealAfter(cfg, serving),
		})
		if err != nil {
			return nil, fmt.Errorf("open embedded store in %s: %w", cfg.Storage.SQLite.Dir, err)
		}
		return &Stores{
			Stream: db.Stream(), Events: db.Events(), Tenants: db, Keys: db, Findings: db, Incidents: db, State: db, Rules: db, Viewers: db, Saved: db, Alerts: db,
			Actions: db, Query: query.NewRunner(db.Events(), query.Options{}), Integrity: db,
			Retention: db, RetentionPlanner: db, FindingRetention: db,
			Ping: db.Ping, Ready: db.Ready, DiskSize: db.DiskBytes, Close: db.Close,
		}, nil
	}
	return nil, fmt.Errorf("storage.driver %q is not available", cfg.Storage.Driver)
}

// WithStores opens the stores, runs fn and closes them: for one-shot
// administrative commands.
func WithStores(ctx context.Context, cfg config.Config, fn func(*Stores) error) error {
	return withStores(ctx, cfg, false, fn)
}

func withStores(ctx context.Context, cfg config.Config, migrate bool, fn func(*Stores) error) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	s, err := openStores(ctx, cfg, slog.New(slog.DiscardHandler), time.Now, false, migrate)
	if err != nil {
		return err
	}
	err = fn(s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Migrate applies pending migrations and says where.
func Migrate(ctx context.Context, cfg config.Config) (string, error) {
	if err := withStores(ctx, cfg, true, func(*Stores) error { return nil }); err != nil {
		return "", err
	}
	if cfg.Storage.Driver == "postgres" {
		return fmt.Sprintf("PostgreSQL schema %s is migrated to the latest schema", cfg.Storage.Postgres.Schema), nil
	}
	return fmt.Sprintf("storage in %s is migrated to the latest schema", cfg.Storage.SQLite.Dir), nil
}

// sealAfter is the embedded store's SealAfter: a serving node seals old
// partitions in the background; a one-off command never starts to.
func sealAfter(cfg config.Config, serving bool) time.Duration {
	if !serving {
		return -1
	}
	return cfg.Storage.SQLite.SealAfter
}
