package app

import (
	"context"

	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/pipeline"
)

// buildLimiter turns the limits configuration into the API's Limiter; the
// same Limiter admits events in the ingest service.
func (a *App) buildLimiter(cfg config.Config) (*httpapi.Limiter, error) {
	l := cfg.Limits
	tenant := func(t config.TenantLimits) httpapi.TenantLimits {
		return httpapi.TenantLimits{
			RequestRate: float64(t.RequestRate), RequestBurst: t.RequestBurst,
			EventRate: float64(t.EventRate), EventBurst: t.EventBurst,
			BacklogShare:      int(int64(cfg.Ingest.MaxBacklog) * int64(t.BacklogSharePercent) / 100),
			ConcurrentQueries: t.ConcurrentQueries, ConcurrentExports: t.ConcurrentExports,
		}
	}
	opts := httpapi.LimiterOptions{
		Tenant: tenant(l.Tenant), Tenants: map[string]httpapi.TenantLimits{},
		KeyRequestRate: float64(l.KeyRequestRate), KeyRequestBurst: l.KeyRequestBurst,
		ConcurrentQueries: l.ConcurrentQueries, ConcurrentExports: l.ConcurrentExports,
		MaxTracked: l.MaxTracked, Registerer: a.registry, Now: a.now,
	}
	for _, o := range l.Tenants {
		opts.Tenants[o.ID] = tenant(o.Apply(l.Tenant))
	}
	opts.Committed = func(ctx context.Context, _ string) (uint64, error) {
		return a.stores.Stream.Offset(ctx, pipeline.Consumer)
	}
	if a.units != nil {
		// Each tenant's events are stored by the pipeline of its partition,
		// which commits its own position.
		n := a.stores.node
		opts.Committed = func(ctx context.Context, tenant string) (uint64, error) {
			return n.stream.PartOffset(ctx, pipeline.Consumer, natsstream.Partition(tenant, n.stream.Partitions()))
		}
	}
	return httpapi.NewLimiter(opts)
}
