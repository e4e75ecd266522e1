// Package retention enforces each tenant's retention period: a background
// job deletes the events, idempotency keys, findings and incidents older
// than the tenant's retention_days, records each purge in the tenant's own
// audit log (vigil.retention.purged), and can show what it would delete
// without deleting it (a dry run).
//
// The job runs against the capabilities in internal/audit (Retention,
// RetentionPlanner, FindingRetention); it knows nothing of SQL.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
)

// Options are the job's dependencies.
type Options struct {
	// Tenants lists the tenants and their retention.
	Tenants audit.TenantStore
	// Events deletes events (and their idempotency keys).
	Events audit.Retention
	// Planner counts what Events would delete; required for dry runs.
	Planner audit.RetentionPlanner
	// Findings expires findings and incidents; nil keeps them.
	Findings audit.FindingRetention
	// Archive, when set, keeps the tenant's events dated before the cutoff
	// somewhere else and returns how many; the purge runs only after it
	// succeeded.
	Archive func(ctx context.Context, tenant string, before time.Time) (int64, error)
	// Record appends a record to a tenant's audit log and waits until it is
	// durable (the ingest service's own path). Nil records nothing.
	Record func(ctx context.Context, ev *audit.Event) error
	// Interval is the time between scheduled runs (the first runs one
	// minute after Run starts, or at once when Interval is shorter).
	Interval time.Duration
	// Now is the wall clock (retention is measured against it, not event
	// time: a tenant's data is kept for N days of real time).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Job is the retention job. RunOnce and Run may be used concurrently; runs
// are serialized.
type Job struct {
	opts Options
	mu   sync.Mutex // one run at a time

	purged   *prometheus.CounterVec
	archived prometheus.Counter
	runs     *prometheus.CounterVec
	lastRun  prometheus.Gauge
}

// New builds a job.
func New(opts Options) (*Job, error) {
	if opts.Tenants == nil || opts.Events == nil {
		return nil, errors.New("retention: Tenants and Events are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	j := &Job{
		opts: opts,
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_retention_purged_total",
			Help: "Records deleted by retention, by kind (events, findings, incidents).",
		}, []string{"kind"}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_retention_archived_events_total",
			Help: "Events archived by retention before it deleted them (retention.archive).",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_retention_runs_total",
			Help: "Retention runs over every tenant, by result (ok: every tenant purged; error: at least one failed).",
		}, []string{"result"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_retention_last_success_timestamp_seconds",
			Help: "When a retention run last completed for every tenant (Unix seconds); 0 before the first.",
		}),
	}
	for _, k := range []string{"events", "findings", "incidents"} {
		j.purged.WithLabelValues(k)
	}
	for _, r := range []string{"ok", "error"} {
		j.runs.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{j.purged, j.archived, j.runs, j.lastRun} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("retention metrics: %w", err)
			}
		}
	}
	return j, nil
}

// Cutoff is the instant before which a tenant's data goes at now: whole
// UTC days, so a purge removes whole day partitions where it can and a run
// later the same day deletes nothing new.
func Cutoff(now time.Time, retentionDays int) time.Time {
	if retentionDays < 1 {
		retentionDays = audit.DefaultRetentionDays
	}
	return now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -retentionDays)
}

// RunOnce applies retention to one tenant (or every tenant when tenant is
// ""), or with dryRun reports what it would delete. A tenant that fails is
// reported with its error and the others still run; the returned error is
// set when any failed or the tenant list could not be read. An unknown
// tenant is ENOTFOUND.
func (j *Job) RunOnce(ctx context.Context, tenant string, dryRun bool) ([]audit.PurgeReport, error) {
	if dryRun && j.opts.Planner == nil {
		return nil, audit.Errorf(audit.EINVALID, "this store cannot count what retention would delete")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var tenants []audit.Tenant
	if tenant != "" {
		t, err := j.opts.Tenants.GetTenant(ctx, tenant)
		if err != nil {
			return nil, err
		}
		tenants = []audit.Tenant{*t}
	} else {
		var err error
		if tenants, err = j.opts.Tenants.ListTenants(ctx); err != nil {
			return nil, fmt.Errorf("retention: list tenants: %w", err)
		}
	}
	now := j.opts.Now()
	reports := make([]audit.PurgeReport, 0, len(tenants))
	var errs []error
	for _, t := range tenants {
		if err := ctx.Err(); err != nil {
			return reports, err
		}
		rep, err := j.one(ctx, t, now, dryRun)
		if err != nil {
			rep.Error = err.Error()
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.ID, err))
			j.opts.Logger.LogAttrs(ctx, slog.LevelError, "retention failed", slog.String("tenant_id", t.ID), slog.String("error", err.Error()))
		}
		reports = append(reports, rep)
	}
	err := errors.Join(errs...)
	if tenant == "" && !dryRun {
		if err != nil {
			j.runs.WithLabelValues("error").Inc()
		} else {
			j.runs.WithLabelValues("ok").Inc()
			j.lastRun.Set(float64(now.Unix()))
		}
	}
	return reports, err
}

func (j *Job) one(ctx context.Context, t audit.Tenant, now time.Time, dryRun bool) (audit.PurgeReport, error) {
	before := Cutoff(now, t.RetentionDays)
	rep := audit.PurgeReport{Tenant: t.ID, RetentionDays: t.RetentionDays, Before: before, DryRun: dryRun}
	if dryRun {
		n, err := j.opts.Planner.CountBefore(ctx, t.ID, before)
		if err != nil {
			return rep, err
		}
		rep.Events = n
		if j.opts.Findings != nil {
			rep.Findings, rep.Incidents, err = j.opts.Findings.PurgeFindings(ctx, t.ID, before, true)
		}
		return rep, err
	}
	if j.opts.Archive != nil {
		n, err := j.opts.Archive(ctx, t.ID, before)
		rep.Archived = n
		j.archived.Add(float64(n))
		if err != nil {
			return rep, fmt.Errorf("archive before purging (nothing was deleted): %w", err)
		}
	}
	n, err := j.opts.Events.Purge(ctx, t.ID, before)
	rep.Events = n
	j.purged.WithLabelValues("events").Add(float64(n))
	if err == nil && j.opts.Findings != nil {
		rep.Findings, rep.Incidents, err = j.opts.Findings.PurgeFindings(ctx, t.ID, before, false)
		j.purged.WithLabelValues("findings").Add(float64(rep.Findings))
		j.purged.WithLabelValues("incidents").Add(float64(rep.Incidents))
	}
	if rep.Events+rep.Findings+rep.Incidents > 0 {
		j.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "retention purged", slog.String("tenant_id", t.ID),
			slog.Time("before", before), slog.Int64("events", rep.Events),
			slog.Int64("findings", rep.Findings), slog.Int64("incidents", rep.Incidents))
		// What was deleted is itself recorded, even after a partial
		// failure: the log says what it no longer holds.
		if rerr := j.record(ctx, rep); rerr != nil {
			err = errors.Join(err, fmt.Errorf("record the purge: %w", rerr))
		}
	}
	return rep, err
}

func (j *Job) record(ctx context.Context, rep audit.PurgeReport) error {
	if j.opts.Record == nil {
		return nil
	}
	return j.opts.Record(ctx, &audit.Event{
		Tenant: rep.Tenant, Action: audit.ActionRetentionPurged,
		Actor: audit.Actor{ID: "vigil-retention", Type: audit.ActorService},
		Metadata: map[string]any{
			"before": rep.Before.Format(time.RFC3339), "retention_days": rep.RetentionDays,
			"events": rep.Events, "findings": rep.Findings, "incidents": rep.Incidents, "archived": rep.Archived,
		},
	})
}

// Run applies retention to every tenant every Interval until ctx ends.
// Failures are logged and counted; the next run tries again.
func (j *Job) Run(ctx context.Context) {
	if j.opts.Interval <= 0 {
		return
	}
	first := min(time.Minute, j.opts.Interval)
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_, _ = j.RunOnce(ctx, "", false)
		timer.Reset(j.opts.Interval)
	}
}
