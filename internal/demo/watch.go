package demo

import (
	"context"
	"sync"
	"time"

	"github.com/vigilhq/vigil/client"
)

// seenFinding is a finding with when the demo first saw it.
type seenFinding struct {
	client.Finding
	seen time.Time
}

// watcher polls findings and remembers when each first appeared.
type watcher struct {
	c       *client.Client
	mu      sync.Mutex
	byID    map[string]*seenFinding
	lastErr error
}

func newWatcher(c *client.Client) *watcher {
	return &watcher{c: c, byID: map[string]*seenFinding{}}
}

func (w *watcher) run(ctx context.Context, since time.Time) {
	for {
		w.poll(ctx, since)
		select {
		case <-ctx.Done():
			w.poll(context.WithoutCancel(ctx), since)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *watcher) poll(ctx context.Context, since time.Time) {
	now := time.Now()
	for f, err := range w.c.Findings(ctx, client.FindingParams{Since: since, Limit: 1000}) {
		if err != nil {
			if ctx.Err() == nil {
				w.mu.Lock()
				w.lastErr = err
				w.mu.Unlock()
			}
			return
		}
		w.mu.Lock()
		if old, ok := w.byID[f.ID]; ok {
			old.Finding = f
		} else {
			w.byID[f.ID] = &seenFinding{Finding: f, seen: now}
		}
		w.mu.Unlock()
	}
}

func (w *watcher) all() []*seenFinding {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*seenFinding, 0, len(w.byID))
	for _, f := range w.byID {
		out = append(out, f)
	}
	return out
}

func (w *watcher) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}
