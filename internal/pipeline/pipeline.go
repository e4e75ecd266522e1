// Package pipeline consumes the durable event stream behind ingestion:
// each batch of accepted events is enriched, run through detection, stored
// for search, and its findings saved; then the consumer's position is
// committed.
//
// Crash safety rests on idempotency rather than on one transaction across
// stores: inserting events and upserting findings are idempotent, and the
// stream position is committed only after the detector has checkpointed
// the state that covers it. A crash therefore replays at most the
// uncommitted tail, which re-stores nothing twice and, because detection is
// deterministic and resumes from the matching checkpoint, raises the same
// findings.
//
// On a stream whose dedupe holds only within a window (NATS JetStream,
// audit.WindowedDedupe), a client that sends an event again after the
// window gets it appended as a new record. The pipeline drops such late
// duplicates before enrichment, using the store's receipts
// (audit.StoredReceipts) as the permanent dedupe, so that each event is
// evaluated and stored once.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
)

// Consumer is the pipeline's name on the stream unless Options.Consumer
// names another.
const Consumer = "pipeline"

// Options configures a Pipeline.
type Options struct {
	Stream audit.EventStream // required
	// Consumer is the pipeline's consumer name on the stream, under which
	// its position is kept; default Consumer. Pipelines reading one stream
	// side by side need names of their own.
	Consumer string
	// FindingsOnly stores findings and incidents but not the events, which
	// other pipelines store: partitioned detection's installation-wide
	// pipeline reads every partition's events, which the partitions'
	// pipelines store. Events is still required for the receipts of a
	// WindowedDedupe stream.
	FindingsOnly bool
	// Events stores the events; required. With a Stream that is
	// audit.WindowedDedupe it must also be audit.StoredReceipts, the
	// permanent dedupe the stream lacks.
	Events   audit.EventStore
	Findings audit.FindingStore
	// Incidents stores the incidents of a detector that groups findings
	// (audit.IncidentSource); nil leaves them unstored.
	Incidents audit.IncidentStore
	// Enricher runs on every event before detection; nil skips enrichment.
	Enricher audit.Enricher
	// Detector evaluates events; nil skips detection.
	Detector audit.Detector
	// BatchSize is the most records handled at once; default 20,000.
	// Batches are as large as the backlog allows: the indexed insert into
	// a day partition costs per commit the index pages it dirties, so on
	// a partition of a million events a backlog drains ~35% faster in
	// batches of 20,000 than of 5,000 (BenchmarkInsertEvents). Without a
	// backlog a batch is whatever arrived since the last one.
	BatchSize int
	// Linger is how long, once the pipeline has caught up with the stream,
	// it lets new records gather before it reads them: after a read that
	// found fewer than BatchSize records, the next waits until Linger has
	// passed since it. Each batch's store writes cost much the same for ten
	// events as for a thousand (every transaction rewrites the index pages
	// it touches), so under a steady trickle of small requests a short
	// linger saves most of the pipeline's CPU, at the price of records
	// becoming searchable up to Linger later. A backlog (full batches) is
	// never delayed, nor is the first record after an idle spell; Flush
	// and shutdown cut a linger short. 0 (the default) reads at once.
	Linger time.Duration
	// CheckpointEvery is how often the detector state and the stream
	// position are made durable while events flow; default 5s. A shorter
	// interval replays less after a crash and costs more: each checkpoint
	// encodes every detection state changed since the last one on the
	// detect stage and writes it on the store stage (a detector that is
	// not an audit.StagedCheckpointer also waits, first, until everything
	// detected is stored, which stalls detection).
	CheckpointEvery time.Duration
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	// Now is the wall clock, used for latency metrics and, once the
	// pipeline has caught up with the stream, to let a detector that holds
	// events for event-time order (audit.Advancer) evaluate those older
	// than its allowed lateness.
	Now func() time.Time
}

// Pipeline is the stream consumer. Run it once.
type Pipeline struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	lags    []prometheus.Collector
	batches prometheus.Histogram
	storedN prometheus.Counter
	finds   prometheus.Counter
	latency prometheus.Histogram
	errs    prometheus.Counter
	dups    prometheus.Counter
	// lookup is the store's receipts when the stream dedupes only within a
	// window, nil otherwise (no record is looked up or dropped).
	lookup audit.StoredReceipts
	// recent holds the keys of the records of the last batches handed to
	// the store stage, which may not be stored yet, so a lookup cannot
	// tell that they repeat; next is the slot the next batch's keys take.
	// Only the detect stage touches them.
	recent [recentBatches]map[audit.EventKey]struct{}
	next   int
	// processed is the last Seq handled in memory; committed is durable.
	processed, committed uint64
	// detected and stored mirror, for the lag gauges read at scrape time,
	// the last Seq through detection and the last Seq stored for search;
	// started says they hold the positions of a running pipeline (until
	// then the lag is measured from the committed offset).
	detected, stored atomic.Uint64
	started          atomic.Bool
	// advanced is set when the detector evaluated held events since the
	// last checkpoint (Advance, Flush): its state changed without new
	// records.
	advanced bool
	// flushReq carries requests of Flush to the running Run loop.
	flushReq chan chan error
}

// advanceEvery is how often, at most, held events are evaluated by the
// wall clock after reads that found something (a read of nothing always
// does it). Each evaluation that releases events writes the findings they
// change, so doing it after every small batch would cost a finding update
// per batch; with an allowed lateness of minutes a second is soon enough.
// A shorter lateness shortens the pace with it (advancePace).
const advanceEvery = time.Second

// advancePace is how often held events are evaluated by the wall clock
// while reads keep finding events: advanceEvery, or a hundredth of the
// detector's allowed lateness when that is shorter, so the pace never adds
// more than a percent to the hold a deployment chose (with a lateness of a
// millisecond, after every read).
func (p *Pipeline) advancePace() time.Duration {
	if h, ok := p.opts.Detector.(holder); ok {
		return min(advanceEvery, h.AllowedLateness()/100)
	}
	return advanceEvery
}

// storeQueue is how many batches wait for the store stage beside the one
// it is storing.
const storeQueue = 1

// recentBatches is how many batches detection runs ahead of storage: when
// a batch is read, the store stage may still be storing one earlier batch
// and have storeQueue more waiting (a batch is handed over only once the
// queue has room, that is once the store stage took the one before it,
// having stored the one before that).
const recentBatches = storeQueue + 1

// New returns a Pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.Stream == nil || opts.Events == nil {
		return nil, errors.New("pipeline: Stream and Events are required")
	}
	var lookup audit.StoredReceipts
	if w, ok := opts.Stream.(audit.WindowedDedupe); ok {
		if lookup, ok = opts.Events.(audit.StoredReceipts); !ok {
			return nil, fmt.Errorf("pipeline: the stream dedupes events only within %s, so Events must look up stored receipts (audit.StoredReceipts) to drop late duplicates; %T does not",
				w.DedupeWindow(), opts.Events)
		}
	}
	if opts.Detector != nil && opts.Findings == nil {
		return nil, errors.New("pipeline: Findings is required with a Detector")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 20_000
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 5 * time.Second
	}
	if opts.Consumer == "" {
		opts.Consumer = Consumer
	}
	p := &Pipeline{opts: opts, log: opts.Logger, now: opts.Now, lookup: lookup, flushReq: make(chan chan error)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.lags = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_pipeline_detect_lag_events",
			Help: "Accepted events not yet run through enrichment and detection."}, func() float64 { return p.lag(&p.detected) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_pipeline_store_lag_events",
			Help: "Accepted events not yet stored, so not yet searchable."}, func() float64 { return p.lag(&p.stored) }),
		// The original name, kept for existing dashboards: the store lag,
		// which its help text always described.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_pipeline_lag_events",
			Help: "Accepted events not yet evaluated and stored (same as vigil_pipeline_store_lag_events)."}, func() float64 { return p.lag(&p.stored) }),
	}
	p.batches = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_pipeline_batch_seconds", Help: "Time to enrich, detect and store one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	p.storedN = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_pipeline_events_total", Help: "Events enriched, evaluated and stored."})
	p.finds = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_pipeline_findings_total", Help: "Finding updates stored."})
	p.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_finding_latency_seconds", Help: "Per stored finding update: from the receipt of the event that changed it (acknowledged within the ingest commit that follows) to the finding's storage; events held for event-time order (detect.allowed_lateness) count their wait.", Buckets: latencyBuckets(opts.Detector)})
	p.errs = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_pipeline_errors_total", Help: "Batches that failed and were retried."})
	p.dups = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_pipeline_duplicates_dropped_total", Help: "Records of a stream whose dedupe holds only within a window (NATS JetStream) dropped before enrichment, detection and storage: events a client sent again after the window, already stored from an earlier receipt or already on their way to the store."})
	if opts.Registerer != nil {
		for _, c := range append([]prometheus.Collector{p.batches, p.storedN, p.finds, p.latency, p.errs, p.dups}, p.lags...) {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register pipeline metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Run consumes until ctx is cancelled, then checkpoints what it processed
// and returns nil. It runs in two stages that overlap on separate
// goroutines: reading, enrichment and detection of one batch while the
// previous batch's events and findings are being stored. A batch that fails
// to be stored is retried with backoff, findings included, so a store
// outage delays events but never drops them or their findings.
//
// The detector state made durable always matches the stream position
// committed with it, and both follow the events they cover. A detector
// that stages its checkpoints (audit.StagedCheckpointer) captures its state
// on the detect stage and hands the save to the store stage, which saves
// it and commits the position after storing the batches before it, while
// detection goes on. For any other detector a checkpoint is a barrier:
// detection pauses until the store stage has stored every batch it was
// handed.
func (p *Pipeline) Run(parent context.Context) error {
	// The store stage cancels ctx when a checkpoint finds the pipeline
	// fenced (another node runs it now).
	ctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	off, err := p.startOffset(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started: a shutdown, not a failure
		}
		return fmt.Errorf("read pipeline offset: %w", err)
	}
	p.processed, p.committed = off, off
	p.setStart(off)
	toStore := make(chan *batch, storeQueue)
	type storeEnd struct {
		stored uint64 // the last Seq stored
		failed bool   // a batch or a staged checkpoint was left unstored
	}
	storeDone := make(chan storeEnd, 1)
	go func() {
		stored, failed := p.storeLoop(ctx, stop, toStore, off)
		storeDone <- storeEnd{stored, failed}
	}()
	staged, _ := p.opts.Detector.(audit.StagedCheckpointer)

	// Checkpoints are paced by the machine's clock (p.now may be an event
	// clock in tests): at most one per CheckpointEvery while events flow
	// or held ones are released, and one within CheckpointEvery of going
	// idle. Idle, the loop wakes at least every idleWake to evaluate the
	// held events the wall clock has passed.
	lastCheckpoint := time.Now()
	backoff := 50 * time.Millisecond
	var pendingFlush chan error // a Flush waiting for the loop to catch up
	// dropped is a staged checkpoint prepared as the pipeline stopped and
	// never handed to the store stage: it is saved before the last one.
	var dropped func(context.Context) error
	// lingerUntil is when the next read may start after a read that found
	// fewer records than a batch (Options.Linger); zero: at once.
	var lingerUntil time.Time
	var lastAdvance time.Time // the last turn that evaluated held events
	pace := p.advancePace()
	for ctx.Err() == nil {
		if wait := time.Until(lingerUntil); wait > 0 && pendingFlush == nil {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case pendingFlush = <-p.flushReq:
				// Read now: the caller appended its events before asking.
			case <-ctx.Done():
			}
			t.Stop()
			if ctx.Err() != nil {
				break
			}
		}
		lingerUntil = time.Time{}
		b, err := p.detect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.errs.Inc()
			p.log.LogAttrs(ctx, slog.LevelWarn, "pipeline batch failed; retrying", slog.String("error", err.Error()), slog.Duration("backoff", backoff))
			_ = sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		// A read of less than a batch took everything the stream held: the
		// pipeline has caught up, as after a read of nothing.
		partial := b != nil && len(b.recs)+b.dropped < p.opts.BatchSize
		if partial && p.opts.Linger > 0 {
			lingerUntil = b.start.Add(p.opts.Linger)
		}
		if b != nil {
			select {
			case toStore <- b:
			case <-ctx.Done():
				continue
			}
		}
		var flushed chan error
		if b == nil {
			if pendingFlush == nil {
				select {
				case pendingFlush = <-p.flushReq:
					// Read once more first: the caller appended its
					// events before asking, and the read that just found
					// nothing may have started before they were there.
					continue
				default:
				}
			} else {
				flushed, pendingFlush = pendingFlush, nil
			}
		}
		if b == nil || (partial && time.Since(lastAdvance) >= pace) {
			// Caught up: held events older than the lateness by the wall
			// clock are evaluated now, so a quiet tenant gets its findings
			// while others keep sending (all of them when Flush asked).
			lastAdvance = time.Now()
			if ab := p.advance(ctx, flushed != nil); ab != nil {
				select {
				case toStore <- ab:
				case <-ctx.Done():
					continue
				}
			}
		}
		if (p.processed > p.committed || p.advanced) && time.Since(lastCheckpoint) >= p.opts.CheckpointEvery {
			if staged != nil {
				if save, err := staged.PrepareCheckpoint(ctx); err != nil {
					if ctx.Err() == nil {
						p.log.LogAttrs(ctx, slog.LevelWarn, "pipeline checkpoint failed", slog.String("error", err.Error()))
					}
				} else {
					select {
					case toStore <- &batch{save: save, last: p.processed}:
						// From here the store stage owns it: it retries
						// the save until it succeeds or the pipeline stops.
						p.committed = p.processed
						p.advanced = false
					case <-ctx.Done():
						dropped = save
					}
				}
			} else if err := p.barrier(ctx, toStore); err == nil {
				if err := p.checkpoint(ctx); errors.Is(err, audit.ErrFenced) {
					// Another node runs this pipeline now: this one's
					// state is stale, and it must stop, not retry.
					stop(err)
					break
				} else if err != nil {
					p.log.LogAttrs(ctx, slog.LevelWarn, "pipeline checkpoint failed", slog.String("error", err.Error()))
				}
			}
			lastCheckpoint = time.Now()
		}
		if flushed != nil {
			flushed <- p.barrier(ctx, toStore)
			continue
		}
		if b == nil {
			waitCtx, cancel := context.WithTimeout(ctx, p.idleWait(min(p.opts.CheckpointEvery, idleWake)))
			err := p.opts.Stream.Wait(waitCtx, p.processed)
			cancel()
			if errors.Is(err, audit.ErrStreamClosed) {
				break
			}
		}
	}
	if pendingFlush != nil {
		err := ctx.Err()
		if err == nil {
			err = audit.ErrStreamClosed
		}
		pendingFlush <- err
	}
	close(toStore)
	end := <-storeDone
	if cause := context.Cause(ctx); errors.Is(cause, audit.ErrFenced) {
		return fmt.Errorf("stopped: %w", cause)
	}
	if end.failed || end.stored != p.processed {
		// A batch or a staged checkpoint handed to the store stage was
		// not stored (the stores failed as shutdown began). Nothing more
		// is checkpointed: the next start replays from the last committed
		// position with the detector state that matches it.
		p.log.LogAttrs(ctx, slog.LevelWarn, "pipeline stopped with unstored events; they will be processed again on restart",
			slog.Uint64("stored", end.stored), slog.Uint64("processed", p.processed))
		return nil
	}
	if dropped != nil {
		// The last checkpoint holds only what changed after this one.
		if err := dropped(context.WithoutCancel(ctx)); err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "pipeline could not save its state at shutdown; the events since the last checkpoint will be processed again on restart",
				slog.String("error", err.Error()))
			return nil
		}
	}
	return p.checkpoint(context.WithoutCancel(ctx))
}

// idleWake is the longest the pipeline waits for new events before it
// evaluates the held events the wall clock has passed (and checkpoints,
// when one is due).
const idleWake = time.Second

// dueReporter is a detector that can say when its oldest held event
// becomes due for Advance (detect.Engine).
type dueReporter interface {
	NextDue() (time.Time, bool)
}

// idleWait is how long a pipeline that has caught up waits for new events:
// limit, or less when the detector's oldest held event falls due sooner,
// so that its findings are stored when the lateness has passed rather than
// at the next idle wake (up to a second later).
func (p *Pipeline) idleWait(limit time.Duration) time.Duration {
	d, ok := p.opts.Detector.(dueReporter)
	if !ok {
		return limit
	}
	due, held := d.NextDue()
	return untilDue(limit, p.now(), due, held)
}

// minIdleWait keeps a detector whose due time has passed without Advance
// releasing anything (a clock that does not move, in tests) from spinning.
const minIdleWait = 5 * time.Millisecond

// untilDue is the wait until due, between minIdleWait and limit.
func untilDue(limit time.Duration, now, due time.Time, held bool) time.Duration {
	if !held {
		return limit
	}
	return min(limit, max(due.Sub(now), minIdleWait))
}

// batch is one read of the stream on its way from detection to the stores;
// with done set, a barrier the store stage answers once everything before
// it is stored; with save set, a staged checkpoint the store stage saves,
// then commits at last, once everything before it is stored.
type batch struct {
	recs      []audit.Record
	findings  []audit.Finding
	received  []time.Time // per finding: receipt of the evidence that changed it (audit.EvidenceReceipts)
	incidents []audit.Incident
	last      uint64
	// dropped counts the records of the read dropped as duplicates; a
	// read of nothing else leaves recs empty but still moves the stored
	// position to last.
	dropped int
	start   time.Time
	done    chan struct{}
	save    func(context.Context) error
}

// barrier waits until the store stage has stored every batch sent so far.
func (p *Pipeline) barrier(ctx context.Context, toStore chan<- *batch) error {
	b := &batch{done: make(chan struct{})}
	select {
	case toStore <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// storeLoop is the store stage: it stores each batch and saves each staged
// checkpoint, retrying with backoff until it succeeds or ctx ends, and
// returns the last Seq stored and whether it left anything undone. A batch
// already being stored when ctx ends is finished; after that it only
// drains the channel. A checkpoint that finds the pipeline fenced stops
// it (stop).
func (p *Pipeline) storeLoop(ctx context.Context, stop context.CancelCauseFunc, in <-chan *batch, stored uint64) (uint64, bool) {
	failed := false
	for b := range in {
		if b.done != nil {
			if !failed {
				close(b.done)
			}
			continue
		}
		if failed {
			continue
		}
		var err error
		if b.save != nil {
			err = p.retry(ctx, "pipeline checkpoint failed; retrying", p.saveStaged(b))
		} else {
			err = p.retry(ctx, "pipeline could not store a batch; retrying", func(ctx context.Context) error { return p.store(ctx, b) })
		}
		if err != nil {
			if errors.Is(err, audit.ErrFenced) {
				p.log.LogAttrs(ctx, slog.LevelWarn, "pipeline fenced: another node runs it now", slog.String("error", err.Error()))
				stop(err)
			}
			failed = true
			continue
		}
		if b.save == nil {
			stored = b.last
		}
	}
	return stored, failed
}

// retry runs fn (with a context that shutdown does not cancel, so a write
// under way finishes) until it succeeds, with backoff, and returns nil; or
// the last error once ctx ends or the error says the pipeline is fenced,
// which no retry mends.
func (p *Pipeline) retry(ctx context.Context, msg string, fn func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	for {
		err := fn(context.WithoutCancel(ctx))
		if err == nil || errors.Is(err, audit.ErrFenced) || ctx.Err() != nil {
			return err
		}
		p.errs.Inc()
		p.log.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("error", err.Error()), slog.Duration("backoff", backoff))
		if sleep(ctx, backoff) != nil {
			return err
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// saveStaged returns the attempt that saves a staged checkpoint, then
// commits its position; a retry after a failed commit does not save again.
func (p *Pipeline) saveStaged(b *batch) func(context.Context) error {
	saved := false
	return func(ctx context.Context) error {
		if !saved {
			if err := b.save(ctx); err != nil {
				return fmt.Errorf("checkpoint detector: %w", err)
			}
			saved = true
		}
		if err := p.opts.Stream.Commit(ctx, p.opts.Consumer, b.last); err != nil {
			return fmt.Errorf("commit pipeline offset %d: %w", b.last, err)
		}
		return nil
	}
}

// Flush asks the running Run loop to evaluate every event the detector
// holds for event-time order once it has caught up with the stream, and
// waits until their findings are stored. `vigil demo` uses it when its
// simulated traffic ends, instead of waiting the allowed lateness.
func (p *Pipeline) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case p.flushReq <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Drain processes everything appended so far and checkpoints it; tests and
// `vigil demo` use it to wait for the pipeline to catch up without a
// separate Run goroutine. It runs both stages in turn on the caller's
// goroutine.
func (p *Pipeline) Drain(ctx context.Context) error {
	if p.processed == 0 && p.committed == 0 {
		off, err := p.startOffset(ctx)
		if err != nil {
			return err
		}
		p.processed, p.committed = off, off
		p.setStart(off)
	}
	for {
		b, err := p.detect(ctx)
		if err != nil {
			return err
		}
		if b == nil {
			if ab := p.advance(ctx, true); ab != nil {
				if err := p.store(ctx, ab); err != nil {
					return err
				}
			}
			return p.checkpoint(ctx)
		}
		if err := p.store(ctx, b); err != nil {
			return err
		}
	}
}

// startOffset is the committed position the pipeline resumes from. On a
// stream that several nodes share (audit.PositionClaimer) it claims the
// position, so that a node that ran the pipeline before cannot commit
// over this one's.
func (p *Pipeline) startOffset(ctx context.Context) (uint64, error) {
	if c, ok := p.opts.Stream.(audit.PositionClaimer); ok {
		return c.Claim(ctx, p.opts.Consumer)
	}
	return p.opts.Stream.Offset(ctx, p.opts.Consumer)
}

// detect reads the next batch after p.processed, enriches it and runs
// detection; nil when the stream has nothing new. It advances p.processed:
// from here on the detector has seen the batch, so it must be stored
// (with its findings) before the next checkpoint. On a WindowedDedupe
// stream it first drops the batch's late duplicates (dropDuplicates).
func (p *Pipeline) detect(ctx context.Context) (*batch, error) {
	recs, err := p.opts.Stream.Read(ctx, p.processed, p.opts.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read stream after %d: %w", p.processed, err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	start := time.Now()
	last := recs[len(recs)-1].Seq
	read := len(recs)
	var keys map[audit.EventKey]struct{}
	if p.lookup != nil {
		if recs, keys, err = p.dropDuplicates(ctx, recs); err != nil {
			return nil, err
		}
	}
	// Vigil's own read-audit records (vigil.search, vigil.export) are stored
	// but not evaluated: they are not user activity, and, stamped with the
	// reader's wall clock, they would advance the tenant's event-time
	// watermark past events still on their way.
	ptrs := make([]*audit.Record, 0, len(recs))
	// A findings-only pipeline stores no event: what its detector does not
	// evaluate needs no enrichment.
	filter, _ := p.opts.Detector.(audit.ActionFilter)
	if !p.opts.FindingsOnly {
		filter = nil
	}
	for i := range recs {
		if recs[i].Event.Namespace() != "vigil" {
			ptrs = append(ptrs, &recs[i])
		}
		if p.opts.Enricher != nil && (filter == nil || filter.Evaluates(recs[i].Event.Action)) {
			// Enrichers never fail an event; an error is the enricher's own
			// fault, already counted and logged by the enrichment pipeline.
			_ = p.opts.Enricher.Enrich(ctx, &recs[i].Event)
		}
	}
	b := &batch{recs: recs, last: last, dropped: read - len(recs), start: start}
	if p.opts.Detector != nil && len(ptrs) > 0 {
		if b.findings, err = p.opts.Detector.Process(ctx, ptrs); err != nil {
			return nil, fmt.Errorf("detect: %w", err)
		}
		b.received = p.receipts(len(b.findings))
		b.incidents = p.takeIncidents()
	}
	if p.lookup != nil {
		// Only a batch that got this far goes on to the store stage: one
		// that failed above is read again, and its records must not then
		// look like repeats of themselves.
		p.recent[p.next] = keys
		p.next = (p.next + 1) % len(p.recent)
		p.dups.Add(float64(b.dropped))
	}
	p.processed = b.last
	p.detected.Store(b.last)
	return b, nil
}

// dropDuplicates returns the records of recs that are not late
// duplicates, in order and in recs' array, and their keys. A record is a
// late duplicate when its (Tenant, ID) repeats an earlier record of the
// batch or of a batch that may not be stored yet (p.recent), or is stored
// with another ReceivedAt: the client sent it again after the stream's
// dedupe window. A record stored with its own ReceivedAt is kept: it is a
// replay, after a crash, of one stored but not committed, and the
// detector, resumed from the checkpoint before it, must see it again. One
// lookup covers the batch.
func (p *Pipeline) dropDuplicates(ctx context.Context, recs []audit.Record) ([]audit.Record, map[audit.EventKey]struct{}, error) {
	lookup := make([]audit.EventKey, 0, len(recs))
	for i := range recs {
		if k := recordKey(&recs[i]); !p.isRecent(k) {
			lookup = append(lookup, k)
		}
	}
	var stored map[audit.EventKey]time.Time
	if len(lookup) > 0 {
		var err error
		if stored, err = p.lookup.StoredReceipts(ctx, lookup); err != nil {
			return nil, nil, fmt.Errorf("look up the receipts of %d stored events: %w", len(lookup), err)
		}
	}
	keys := make(map[audit.EventKey]struct{}, len(recs))
	kept := recs[:0]
	for i := range recs {
		r := &recs[i]
		k := recordKey(r)
		_, again := keys[k]
		at, isStored := stored[k]
		if again || p.isRecent(k) || (isStored && !at.Equal(r.Event.ReceivedAt)) {
			if p.log.Enabled(ctx, slog.LevelDebug) {
				p.log.LogAttrs(ctx, slog.LevelDebug, "dropped a late duplicate", slog.String("tenant_id", k.Tenant),
					slog.String("event_id", k.ID), slog.Uint64("seq", r.Seq))
			}
			continue
		}
		keys[k] = struct{}{}
		kept = append(kept, *r)
	}
	return kept, keys, nil
}

// isRecent reports whether k is the key of a record in a batch that may
// not be stored yet.
func (p *Pipeline) isRecent(k audit.EventKey) bool {
	for _, m := range p.recent {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

func recordKey(r *audit.Record) audit.EventKey {
	return audit.EventKey{Tenant: r.Event.Tenant, ID: r.Event.ID}
}

// advance lets an audit.Advancer detector evaluate held events: those older
// than its lateness by the wall clock, or all of them (flush). It returns
// a batch of findings only, or nil when there are none. A failure is
// logged and retried on the next idle turn: the events stay held.
func (p *Pipeline) advance(ctx context.Context, flush bool) *batch {
	adv, ok := p.opts.Detector.(audit.Advancer)
	if !ok {
		return nil
	}
	held := -1
	h, counts := p.opts.Detector.(interface{ Held() int })
	if counts {
		if held = h.Held(); held == 0 {
			return nil // nothing held: nothing to evaluate, no state to save
		}
	}
	var fs []audit.Finding
	var err error
	if flush {
		fs, err = adv.Flush(ctx)
	} else {
		fs, err = adv.Advance(ctx, p.now())
	}
	if err != nil {
		if ctx.Err() == nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "detector could not evaluate held events", slog.String("error", err.Error()))
		}
		return nil
	}
	if !counts || h.Held() != held || len(fs) > 0 {
		p.advanced = true
	}
	rc := p.receipts(len(fs))
	is := p.takeIncidents()
	if len(fs) == 0 && len(is) == 0 {
		return nil
	}
	return &batch{findings: fs, received: rc, incidents: is, last: p.processed, start: time.Now()}
}

// receipts returns, for the n findings the detector just returned, when
// the evidence that changed each arrived, or nil when it cannot say.
func (p *Pipeline) receipts(n int) []time.Time {
	r, ok := p.opts.Detector.(audit.EvidenceReceipts)
	if !ok || n == 0 {
		return nil
	}
	if rc := r.EvidenceReceived(); len(rc) == n {
		return rc
	}
	return nil
}

// holder is a detector that holds events for event-time order
// (detect.Engine): how long, at most, by the wall clock.
type holder interface {
	AllowedLateness() time.Duration
}

// latencyBuckets are the finding-latency histogram's buckets: 1 ms to
// about 262 s, doubling, and, for a detector that holds events, the same
// steps again above its hold. A live finding waits the hold (2 minutes by
// default) before anything else, so doubling buckets alone would put
// nearly every observation in one bucket of 65-131 s, and a quantile
// interpolated in it would say little (a p50 of 98 s for a hold of 120 s).
// Above the hold the buckets resolve the time the pipeline adds as finely
// as they do without one.
func latencyBuckets(d audit.Detector) []float64 {
	bs := prometheus.ExponentialBuckets(0.001, 2, 19)
	h, ok := d.(holder)
	if !ok || h.AllowedLateness() <= 0 {
		return bs
	}
	hold := h.AllowedLateness().Seconds()
	for _, b := range prometheus.ExponentialBuckets(0.001, 2, 19) {
		bs = append(bs, hold+b)
	}
	bs = append(bs, hold)
	slices.Sort(bs)
	return slices.Compact(bs)
}

// observeLatency records each stored finding's latency: from the receipt of
// the event that changed it (its acknowledgement follows within the ingest
// commit) to now, when the finding is stored.
func (p *Pipeline) observeLatency(b *batch) {
	now := p.now()
	for _, at := range b.received {
		if !at.IsZero() {
			p.latency.Observe(max(now.Sub(at), 0).Seconds())
		}
	}
}

// takeIncidents collects the incidents the detector changed, when it groups
// findings and there is a store for them.
func (p *Pipeline) takeIncidents() []audit.Incident {
	src, ok := p.opts.Detector.(audit.IncidentSource)
	if !ok || p.opts.Incidents == nil {
		return nil
	}
	return src.TakeIncidents()
}

// storeIncidents writes a batch's incidents after its findings (a merged
// incident moves stored findings, so they must be there first).
func (p *Pipeline) storeIncidents(ctx context.Context, b *batch) error {
	if len(b.incidents) == 0 {
		return nil
	}
	if err := p.opts.Incidents.UpsertIncidents(ctx, b.incidents); err != nil {
		return fmt.Errorf("store %d incidents: %w", len(b.incidents), err)
	}
	return nil
}

// store writes a detected batch's events and findings. Both writes are
// idempotent, so a retry after a partial failure stores nothing twice.
func (p *Pipeline) store(ctx context.Context, b *batch) error {
	events := make([]audit.Event, len(b.recs))
	for i := range b.recs {
		events[i] = b.recs[i].Event
	}
	if len(events) == 0 && b.dropped > 0 {
		// Every record read was a duplicate: nothing to store, but the
		// stored position moves past them.
		p.stored.Store(b.last)
		return nil
	}
	if len(events) == 0 {
		// Findings of held events released while idle (advance).
		if err := p.opts.Findings.UpsertFindings(ctx, b.findings); err != nil {
			return fmt.Errorf("store %d findings: %w", len(b.findings), err)
		}
		p.finds.Add(float64(len(b.findings)))
		p.observeLatency(b)
		return p.storeIncidents(ctx, b)
	}
	if !p.opts.FindingsOnly {
		if err := p.opts.Events.InsertEvents(ctx, events); err != nil {
			return fmt.Errorf("store %d events: %w", len(events), err)
		}
	}
	if len(b.findings) > 0 {
		if err := p.opts.Findings.UpsertFindings(ctx, b.findings); err != nil {
			return fmt.Errorf("store %d findings: %w", len(b.findings), err)
		}
		p.finds.Add(float64(len(b.findings)))
		p.observeLatency(b)
	}
	if err := p.storeIncidents(ctx, b); err != nil {
		return err
	}
	p.stored.Store(b.last)
	p.storedN.Add(float64(len(b.recs)))
	p.batches.Observe(time.Since(b.start).Seconds())
	return nil
}

func (p *Pipeline) checkpoint(ctx context.Context) error {
	if p.processed == p.committed && !p.advanced {
		return nil
	}
	if p.opts.Detector != nil {
		if err := p.opts.Detector.Checkpoint(ctx); err != nil {
			return fmt.Errorf("checkpoint detector: %w", err)
		}
	}
	if err := p.opts.Stream.Commit(ctx, p.opts.Consumer, p.processed); err != nil {
		return fmt.Errorf("commit pipeline offset %d: %w", p.processed, err)
	}
	p.committed = p.processed
	p.advanced = false
	return nil
}

// setStart records the position the pipeline resumes from.
func (p *Pipeline) setStart(off uint64) {
	p.detected.Store(off)
	p.stored.Store(off)
	p.started.Store(true)
}

// lag is how many appended events lie beyond pos, read at scrape time from
// the stream head; 0 when the stream cannot tell.
func (p *Pipeline) lag(pos *atomic.Uint64) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := p.backlog(ctx, pos)
	if err != nil || n < 0 {
		return 0
	}
	return float64(n)
}

// Backlog is how many accepted events are not yet stored (so not yet
// searchable), read from the stream head: what readiness reports as the
// pipeline's lag. It counts from the store stage's position, not from the
// last checkpoint, so it falls to 0 as soon as events are searchable.
// Before the pipeline has started (or on a node whose pipeline does not
// run), it counts from the committed offset the pipeline will resume
// from, so a backlog left by the previous run shows at once. It is -1,
// with a nil error, when the stream cannot tell.
func (p *Pipeline) Backlog(ctx context.Context) (int64, error) {
	return p.backlog(ctx, &p.stored)
}

func (p *Pipeline) backlog(ctx context.Context, pos *atomic.Uint64) (int64, error) {
	st, ok := p.opts.Stream.(audit.StreamStats)
	if !ok {
		return -1, nil
	}
	last, _, err := st.Backlog(ctx)
	if err != nil {
		return -1, err
	}
	at := pos.Load()
	if !p.started.Load() {
		if at, err = p.opts.Stream.Offset(ctx, p.opts.Consumer); err != nil {
			return -1, err
		}
	}
	if last <= at {
		return 0, nil
	}
	n := int64(last - at)
	if h, ok := p.opts.Stream.(audit.StreamHeld); ok {
		// Sequences are sparse on a partition of a stream: last − at also
		// counts other partitions' records. What the partition holds is
		// another bound (from the committed position), tighter under load.
		if held, err := h.Held(ctx); err == nil && held < n {
			n = held
		}
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
