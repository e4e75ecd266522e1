package app

import (
	"context"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/httpapi"
)

// pipelineLag keeps the pipeline's backlog as the background readiness
// run last measured it, so that /readyz can show it without I/O.
type pipelineLag struct {
	mu sync.Mutex
	// measure returns the backlog, -1 when the stream cannot tell: the
	// pipeline's Backlog, events accepted but not yet searchable.
	measure func(context.Context) (int64, error)
	events  int64 // -1 until measured, or when the stream could not answer
	err     string
}

// check is the readiness check that measures the lag. A lagging pipeline
// does not make the node unready (sending it less traffic would not help
// it catch up; ingest refuses with 429 once the backlog is full), and a
// stream that cannot answer is the storage check's to report.
func (l *pipelineLag) check() httpapi.ReadyCheck {
	return httpapi.ReadyCheck{Name: "pipeline",
		Check: func(ctx context.Context) error {
			events, msg := int64(-1), ""
			if l.measure != nil {
				// Well within the readiness check's own timeout, so that a
				// slow stream is reported here and never fails readiness.
				bctx, cancel := context.WithTimeout(ctx, time.Second)
				n, err := l.measure(bctx)
				cancel()
				if err != nil {
					msg = err.Error()
				} else {
					events = n
				}
			}
			l.mu.Lock()
			l.events, l.err = events, msg
			l.mu.Unlock()
			return nil
		},
		Info: func() any {
			l.mu.Lock()
			defer l.mu.Unlock()
			info := map[string]any{"lag_events": l.events}
			if l.err != "" {
				info["error"] = l.err
			}
			return info
		},
	}
}

// value is the last measured backlog, -1 when unknown.
func (l *pipelineLag) value() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

// readyPublic is what /readyz shows beside "ready": the pipeline's lag in
// events (-1 when unknown) and, on a node of a cluster, its role.
func (a *App) readyPublic() map[string]any {
	out := map[string]any{"lag_events": a.lag.value()}
	if n := a.stores.node; n != nil {
		out["role"] = "standby" // it lost its lock and is stopping
		if n.active.Load() {
			out["role"] = "active"
		}
	}
	return out
}
