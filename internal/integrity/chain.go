package integrity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Options configures a Recorder.
type Options struct {
	// Events is the event store the recorder stands in front of; required.
	Events audit.EventStore
	// Store keeps the chains and statements; required.
	Store audit.IntegrityStore
	// Retention purges events; nil makes Purge unavailable.
	Retention audit.Retention
	// Signer signs checkpoints, tombstones and erasure records; required.
	Signer *Signer
	// Keys are the public keys statements may carry (the signer's is
	// added). Older keys stay here after a rotation so that what they
	// signed still verifies.
	Keys   Keyring
	Now    func() time.Time
	Logger *slog.Logger
}

// Recorder is the event store as the pipeline sees it: InsertEvents
// stores events and appends the new ones to their (tenant, day) chains,
// Purge leaves a signed tombstone for what it deletes, and Checkpoint signs
// every head that moved. One lock orders these, so a chain never misses an
// event that the store holds for longer than one call.
type Recorder struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex
}

var (
	_ audit.EventStore = (*Recorder)(nil)
	_ audit.Retention  = (*Recorder)(nil)
)

// New returns a Recorder.
func New(opts Options) (*Recorder, error) {
	if opts.Events == nil || opts.Store == nil || opts.Signer == nil {
		return nil, errors.New("integrity: Events, Store and Signer are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	keys := Keyring{}
	for id, k := range opts.Keys {
		keys[id] = k
	}
	keys[opts.Signer.KeyID()] = opts.Signer.Public()
	opts.Keys = keys
	r := &Recorder{opts: opts, log: opts.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Keys returns the public keys statements are checked with.
func (r *Recorder) Keys() Keyring { return r.opts.Keys }

// Signer returns the current signer.
func (r *Recorder) Signer() *Signer { return r.opts.Signer }

// Store returns the integrity store.
func (r *Recorder) Store() audit.IntegrityStore { return r.opts.Store }

// InsertEvents stores events and appends those not yet chained to their
// chains, in the order given. A retry after a failure between the two
// steps stores nothing twice and chains what is missing: the store skips
// repeated events, the chain skips chained ids.
func (r *Recorder) InsertEvents(ctx context.Context, events []audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.opts.Events.InsertEvents(ctx, events); err != nil {
		return err
	}
	return r.append(ctx, events)
}

// GetEvent reads through to the store.
func (r *Recorder) GetEvent(ctx context.Context, tenant, id string) (*audit.Event, error) {
	return r.opts.Events.GetEvent(ctx, tenant, id)
}

// StoredReceipts reads through to the store, when it has the capability
// (the pipeline asks it only on a stream whose deduplication is windowed).
func (r *Recorder) StoredReceipts(ctx context.Context, keys []audit.EventKey) (map[audit.EventKey]time.Time, error) {
	sr, ok := r.opts.Events.(audit.StoredReceipts)
	if !ok {
		return nil, fmt.Errorf("integrity: the event store (%T) cannot report stored receipts", r.opts.Events)
	}
	return sr.StoredReceipts(ctx, keys)
}

// SearchEvents reads through to the store.
func (r *Recorder) SearchEvents(ctx context.Context, f audit.EventFilter) (*audit.EventPage, error) {
	return r.opts.Events.SearchEvents(ctx, f)
}

func (r *Recorder) append(ctx context.Context, events []audit.Event) error {
	byTenant := map[string][]string{}
	for i := range events {
		byTenant[events[i].Tenant] = append(byTenant[events[i].Tenant], events[i].ID)
	}
	chained := map[string]map[string]bool{}
	for t, ids := range byTenant {
		c, err := r.opts.Store.Chained(ctx, t, ids)
		if err != nil {
			return fmt.Errorf("integrity: look up chained events: %w", err)
		}
		chained[t] = c
	}
	type key struct{ tenant, day string }
	heads := map[key]audit.ChainHead{}
	var entries []audit.ChainEntry
	for i := range events {
		ev := &events[i]
		if chained[ev.Tenant][ev.ID] {
			continue
		}
		chained[ev.Tenant][ev.ID] = true // a batch may repeat an event
		k := key{ev.Tenant, Day(ev.Time)}
		h, ok := heads[k]
		if !ok {
			var err error
			if h, err = r.head(ctx, k.tenant, k.day); err != nil {
				return err
			}
		}
		leaf := Leaf(ev, nil)
		h.Count++
		h.Head = Link(h.Head, leaf)
		heads[k] = h
		entries = append(entries, audit.ChainEntry{Tenant: ev.Tenant, Day: k.day, Seq: h.Count, EventID: ev.ID, Leaf: leaf, Hash: h.Head})
	}
	if err := r.opts.Store.AppendChain(ctx, entries); err != nil {
		return fmt.Errorf("integrity: append %d chain entries: %w", len(entries), err)
	}
	return nil
}

// head returns the current end of a chain, or its start: the genesis hash
// of the tenant and day, or the head a tombstone left.
func (r *Recorder) head(ctx context.Context, tenant, day string) (audit.ChainHead, error) {
	h, err := r.opts.Store.ChainHead(ctx, tenant, day)
	if err != nil {
		return h, fmt.Errorf("integrity: read chain head %s/%s: %w", tenant, day, err)
	}
	if h.Count == 0 {
		h.Head = Genesis(tenant, day)
	}
	return h, nil
}

// Purge deletes tenant's events dated before the cutoff. For every day
// whose chain it ends it first signs a tombstone of the day's head, and
// afterwards deletes the day's chain links; a later event of the day
// continues the chain from the tombstone. Retention cuts at whole UTC days
// (retention.Cutoff): a cutoff inside a day purges part of a chain, which
// verification then reports as deleted events.
func (r *Recorder) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if r.opts.Retention == nil {
		return 0, audit.Errorf(audit.EUNAVAILABLE, "this store cannot delete old data")
	}
	if tenant == "" {
		return 0, audit.FieldErrorf("tenant", "purge needs a tenant")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	days, err := r.opts.Store.ChainDays(ctx, tenant, "", Day(before.Add(-time.Nanosecond)))
	if err != nil {
		return 0, fmt.Errorf("integrity: list days to purge: %w", err)
	}
	lastWhole := before.UTC().Truncate(24 * time.Hour)
	var ends []audit.ChainHead
	for _, d := range days {
		start, _ := time.Parse(DayLayout, d)
		if start.Add(24 * time.Hour).After(lastWhole) {
			continue // a day the cutoff does not wholly cover
		}
		h, err := r.opts.Store.ChainHead(ctx, tenant, d)
		if err != nil {
			return 0, fmt.Errorf("integrity: read chain head %s/%s: %w", tenant, d, err)
		}
		if h.Count == 0 {
			continue
		}
		if t, err := r.opts.Store.Statement(ctx, tenant, audit.StatementTombstone, d); err == nil && t.Count == h.Count {
			ends = append(ends, h) // tombstoned by a run that failed later
			continue
		} else if err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
			return 0, fmt.Errorf("integrity: read tombstone %s/%s: %w", tenant, d, err)
		}
		st := r.opts.Signer.Sign(Body{Kind: audit.StatementTombstone, Tenant: tenant, Day: d, Count: h.Count,
			Head: fmt.Sprintf("%x", h.Head), Time: r.opts.Now()})
		if err := r.opts.Store.PutStatement(ctx, st); err != nil {
			return 0, fmt.Errorf("integrity: store tombstone %s/%s: %w", tenant, d, err)
		}
		ends = append(ends, h)
	}
	n, err := r.opts.Retention.Purge(ctx, tenant, before)
	if err != nil {
		return n, err
	}
	for _, h := range ends {
		if err := r.opts.Store.TrimChain(ctx, tenant, h.Day, h.Count); err != nil {
			return n, fmt.Errorf("integrity: trim chain %s/%s: %w", tenant, h.Day, err)
		}
	}
	return n, nil
}

// Checkpoint signs the head of every chain that moved since its last
// checkpoint and returns how many it signed.
func (r *Recorder) Checkpoint(ctx context.Context) (int, error) {
	signed := 0
	for {
		heads, err := r.opts.Store.Unsigned(ctx, 1000)
		if err != nil {
			return signed, fmt.Errorf("integrity: list unsigned heads: %w", err)
		}
		if len(heads) == 0 {
			return signed, nil
		}
		for _, h := range heads {
			st := r.opts.Signer.Sign(Body{Kind: audit.StatementCheckpoint, Tenant: h.Tenant, Day: h.Day, Count: h.Count,
				Head: fmt.Sprintf("%x", h.Head), Time: r.opts.Now()})
			if err := r.opts.Store.PutStatement(ctx, st); err != nil {
				return signed, fmt.Errorf("integrity: store checkpoint %s/%s: %w", h.Tenant, h.Day, err)
			}
			signed++
		}
		if len(heads) < 1000 {
			return signed, nil
		}
	}
}

// Run checkpoints every interval until ctx ends. The owner checkpoints
// once more after the pipeline stopped, so a clean stop leaves no unsigned
// tail.
func (r *Recorder) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				r.log.LogAttrs(ctx, slog.LevelWarn, "integrity checkpoint failed; retrying next interval", slog.String("error", err.Error()))
			}
		}
	}
}

// sync waits for an InsertEvents in progress to finish appending.
func (r *Recorder) sync() {
	r.mu.Lock()
	//nolint:staticcheck // an empty critical section is the point: wait for the holder
	r.mu.Unlock()
}

// Adopt chains every stored event of tenant that no chain links yet, in
// the order the store lists them (newest first, page by page): the first
// start of a data directory made before tamper evidence. Run it before the
// pipeline starts. It returns how many events it chained.
func (r *Recorder) Adopt(ctx context.Context, tenant string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	f := audit.EventFilter{Tenant: tenant, Limit: audit.MaxPageSize}
	for {
		page, err := r.opts.Events.SearchEvents(ctx, f)
		if err != nil {
			return n, err
		}
		if err := r.append(ctx, page.Events); err != nil {
			return n, err
		}
		n += int64(len(page.Events))
		if page.Next == "" {
			return n, nil
		}
		f.Cursor = page.Next
	}
}
