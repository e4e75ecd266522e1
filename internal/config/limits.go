package config

import (
	"fmt"
	"time"
)

// Limits are the fairness limits between tenants and API keys: request and
// event rates (token buckets: a rate per second and a burst), each
// tenant's share of the ingest backlog, and how many queries and exports
// run at once. 0 turns a limit off.
type Limits struct {
	// Tenant holds the installation default for every tenant.
	Tenant TenantLimits `yaml:"tenant"`
	// KeyRequestRate is requests per second per API key (any route, operator
	// keys included); KeyRequestBurst how many may come at once.
	KeyRequestRate  int `yaml:"key_request_rate"`
	KeyRequestBurst int `yaml:"key_request_burst"`
	// ConcurrentQueries bounds searches, queries and views in progress on
	// the whole server; ConcurrentExports bounds exports.
	ConcurrentQueries int `yaml:"concurrent_queries"`
	ConcurrentExports int `yaml:"concurrent_exports"`
	// MaxExportDuration ends an export after this long (its answer then
	// lacks the X-Vigil-Rows trailer); 0 is no limit.
	MaxExportDuration time.Duration `yaml:"max_export_duration"`
	// ExportWriteTimeout is the longest one write of an export may block
	// before the client is dropped; exports are not bound by
	// server.write_timeout.
	ExportWriteTimeout time.Duration `yaml:"export_write_timeout"`
	// MaxTracked bounds the rate-limit entries kept in memory per kind
	// (keys, tenants).
	MaxTracked int `yaml:"max_tracked"`
	// Tenants override the defaults for named tenants (file only).
	Tenants []TenantOverride `yaml:"tenants"`
}

// TenantLimits are one tenant's limits; 0 turns one off.
type TenantLimits struct {
	// RequestRate is requests per second over all the tenant's keys.
	RequestRate  int `yaml:"request_rate"`
	RequestBurst int `yaml:"request_burst"`
	// EventRate is valid events per second appended for the tenant, through
	// any key. EventBurst must be at least 10,000 (one full request).
	EventRate  int `yaml:"event_rate"`
	EventBurst int `yaml:"event_burst"`
	// BacklogSharePercent is the part of ingest.max_backlog one tenant's
	// waiting events may take.
	BacklogSharePercent int `yaml:"backlog_share_percent"`
	// ConcurrentQueries and ConcurrentExports bound the tenant's reads in
	// progress.
	ConcurrentQueries int `yaml:"concurrent_queries"`
	ConcurrentExports int `yaml:"concurrent_exports"`
}

// TenantOverride replaces some of the default limits for one tenant; an
// omitted field keeps the default.
type TenantOverride struct {
	ID                  string `yaml:"id"`
	RequestRate         *int   `yaml:"request_rate"`
	RequestBurst        *int   `yaml:"request_burst"`
	EventRate           *int   `yaml:"event_rate"`
	EventBurst          *int   `yaml:"event_burst"`
	BacklogSharePercent *int   `yaml:"backlog_share_percent"`
	ConcurrentQueries   *int   `yaml:"concurrent_queries"`
	ConcurrentExports   *int   `yaml:"concurrent_exports"`
}

// Apply returns base with the override's fields set.
func (o TenantOverride) Apply(base TenantLimits) TenantLimits {
	for _, f := range []struct {
		from *int
		to   *int
	}{
		{o.RequestRate, &base.RequestRate}, {o.RequestBurst, &base.RequestBurst},
		{o.EventRate, &base.EventRate}, {o.EventBurst, &base.EventBurst},
		{o.BacklogSharePercent, &base.BacklogSharePercent},
		{o.ConcurrentQueries, &base.ConcurrentQueries}, {o.ConcurrentExports, &base.ConcurrentExports},
	} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	return base
}

// defaultLimits: generous rates for tenant keys, half the backlog per
// tenant, a few reads at once. Event rates and per-key rates are off by
// default (the backlog share bounds what one tenant can queue).
func defaultLimits() Limits {
	return Limits{
		Tenant: TenantLimits{
			RequestRate: 1000, RequestBurst: 2000, EventBurst: 100_000, BacklogSharePercent: 50,
			ConcurrentQueries: 4, ConcurrentExports: 2,
		},
		ConcurrentQueries: 8, ConcurrentExports: 4,
		MaxExportDuration: time.Hour, ExportWriteTimeout: time.Minute, MaxTracked: 10_000,
	}
}

// minEventBurst is one full ingest request (ingest.MaxBatch).
const minEventBurst = 10_000

func (l *Limits) validate(bad func(path, format string, args ...any)) {
	l.Tenant.validate("limits.tenant", bad)
	for path, n := range map[string]int{
		"limits.key_request_rate": l.KeyRequestRate, "limits.key_request_burst": l.KeyRequestBurst,
		"limits.concurrent_queries": l.ConcurrentQueries, "limits.concurrent_exports": l.ConcurrentExports,
	} {
		if n < 0 {
			bad(path, "must not be negative (0 turns the limit off)")
		}
	}
	if l.KeyRequestRate > 0 && l.KeyRequestBurst < 1 {
		bad("limits.key_request_burst", "must be at least 1 when limits.key_request_rate is set")
	}
	if l.MaxExportDuration < 0 {
		bad("limits.max_export_duration", "must not be negative (0 is no limit)")
	}
	if l.ExportWriteTimeout <= 0 {
		bad("limits.export_write_timeout", "must be a positive duration")
	}
	if l.MaxTracked < 100 {
		bad("limits.max_tracked", "must be at least 100")
	}
	seen := map[string]bool{}
	for i, o := range l.Tenants {
		p := fmt.Sprintf("limits.tenants[%d]", i)
		if o.ID == "" {
			bad(p+".id", "is required")
		} else if seen[o.ID] {
			bad(p+".id", "tenant %q is listed twice", o.ID)
		}
		seen[o.ID] = true
		t := o.Apply(l.Tenant)
		t.validate(p, bad)
	}
}

func (t TenantLimits) validate(p string, bad func(path, format string, args ...any)) {
	for name, n := range map[string]int{
		"request_rate": t.RequestRate, "request_burst": t.RequestBurst, "event_rate": t.EventRate, "event_burst": t.EventBurst,
		"concurrent_queries": t.ConcurrentQueries, "concurrent_exports": t.ConcurrentExports,
	} {
		if n < 0 {
			bad(p+"."+name, "must not be negative (0 turns the limit off)")
		}
	}
	if t.RequestRate > 0 && t.RequestBurst < 1 {
		bad(p+".request_burst", "must be at least 1 when request_rate is set")
	}
	if t.EventRate > 0 && t.EventBurst < minEventBurst {
		bad(p+".event_burst", "must be at least %d (one full request) when event_rate is set", minEventBurst)
	}
	if t.BacklogSharePercent < 0 || t.BacklogSharePercent > 100 {
		bad(p+".backlog_share_percent", "must be between 0 (off) and 100")
	}
}
