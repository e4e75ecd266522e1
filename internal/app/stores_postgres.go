package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// openPostgres opens the PostgreSQL store. A serving node also takes the
// schema's node lock and opens its ingest stream in storage.sqlite.dir;
// a one-shot command (serving false) needs neither.
func openPostgres(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time, serving, migrate bool) (*Stores, error) {
	pc := cfg.Storage.Postgres
	var lock *postgres.NodeLock
	// With the stream on NATS, nodes run active/standby: the app takes the
	// lock once the stores are open (awaitActive), waiting for it.
	if serving && cfg.Stream.Driver != "nats" {
		var err error
		if lock, err = postgres.AcquireNodeLock(ctx, pc.URL, pc.Schema); err != nil {
			return nil, err
		}
	}
	pg, err := postgres.Open(ctx, postgres.Options{
		URL: pc.URL, Schema: pc.Schema, MaxConns: pc.MaxConns,
		Migrate: migrate || pc.AutoMigrate, Logger: log.With("component", "postgres"), Now: now,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open PostgreSQL store (schema %s): %w", pc.Schema, err), releaseLock(lock))
	}
	st := &Stores{
		Events: pg, Tenants: pg, Keys: pg, Findings: pg, Incidents: pg, State: pg, Rules: pg,
		Viewers: pg, Saved: pg, Alerts: pg, Actions: pg, Integrity: pg,
		Query:     query.NewRunner(pg, query.Options{}),
		Retention: pg, RetentionPlanner: pg, FindingRetention: pg,
		Ping: pg.Ping, Ready: pg.Ready, DiskSize: pg.DiskBytes,
		Close: func() error { return errors.Join(pg.Close(), releaseLock(lock)) },
	}
	if !serving {
		return st, nil
	}
	if cfg.Stream.Driver == "nats" {
		return withNATSStream(ctx, cfg, log, st, pg)
	}
	local, err := sqlite.OpenLocal(ctx, sqlite.Options{
		Dir: cfg.Storage.SQLite.Dir, Logger: log, Now: now, MaxBacklog: int64(cfg.Ingest.MaxBacklog) * 2,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open the node's ingest stream in %s: %w", cfg.Storage.SQLite.Dir, err), pg.Close(), releaseLock(lock))
	}
	st.Stream = local.Stream()
	st.Retention = retentionPair{pg, local.Stream()}
	st.Ping = func(ctx context.Context) error { return errors.Join(pg.Ping(ctx), local.Ping(ctx)) }
	st.Ready = func(ctx context.Context) error {
		if err := local.Ready(ctx); err != nil {
			return err
		}
		if err := lock.Check(ctx); err != nil {
			return err
		}
		return pg.Ready(ctx)
	}
	st.DiskSize = func() (int64, error) {
		a, err := pg.DiskBytes()
		if err != nil {
			return 0, err
		}
		b, err := local.DiskBytes()
		return a + b, err
	}
	st.Close = func() error { return errors.Join(local.Close(), pg.Close(), releaseLock(lock)) }
	return st, nil
}

// withNATSStream gives a serving node on PostgreSQL its ingest stream on
// NATS JetStream: the accepted events then live outside the node, and the
// node runs active/standby (clusterNode).
func withNATSStream(ctx context.Context, cfg config.Config, log *slog.Logger, st *Stores, pg *postgres.Store) (*Stores, error) {
	nc := cfg.Stream.NATS
	ns, err := natsstream.Open(ctx, natsstream.Options{
		URL: nc.URL, CredsFile: nc.CredsFile, Name: nc.Name, Subject: nc.Subject, Partitions: nc.Partitions,
		Replicas: nc.Replicas, DuplicateWindow: nc.DuplicateWindow, Timeout: nc.Timeout,
		MaxBacklog: int64(cfg.Ingest.MaxBacklog) * 2, MaxBytes: int64(nc.MaxBytes), ClientName: "vigil", Logger: log.With("component", "nats"),
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open the ingest stream on NATS JetStream (stream %s): %w", nc.Name, err), pg.Close())
	}
	node := &clusterNode{pg: pg, stream: ns, url: cfg.Storage.Postgres.URL, schema: cfg.Storage.Postgres.Schema,
		version: buildVersion(), started: time.Now(), log: log.With("component", "cluster")}
	st.node = node
	st.Stream = ns
	st.Ping = func(ctx context.Context) error { return errors.Join(pg.Ping(ctx), ns.Ready(ctx)) }
	st.Ready = func(ctx context.Context) error {
		if err := ns.Ready(ctx); err != nil {
			return err
		}
		node.mu.Lock()
		lock := node.lock
		node.mu.Unlock()
		if lock == nil {
			return audit.Errorf(audit.EUNAVAILABLE, "this node is a standby")
		}
		if err := lock.Check(ctx); err != nil {
			return err
		}
		return pg.Ready(ctx)
	}
	st.Close = func() error {
		node.mu.Lock()
		lock := node.lock
		node.mu.Unlock()
		return errors.Join(ns.Close(), pg.Close(), releaseLock(lock))
	}
	return st, nil
}

func releaseLock(l *postgres.NodeLock) error {
	if l == nil {
		return nil
	}
	return l.Release()
}

// retentionPair purges events from the store and then the stream's
// idempotency keys of the same days, as the embedded store does in one.
type retentionPair struct {
	events, stream audit.Retention
}

func (r retentionPair) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	n, err := r.events.Purge(ctx, tenant, before)
	if err != nil {
		return n, err
	}
	if _, err := r.stream.Purge(ctx, tenant, before); err != nil {
		return n, err
	}
	return n, nil
}
