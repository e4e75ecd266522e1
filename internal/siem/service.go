package siem

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
)

// Sink kinds.
const (
	KindHTTPS  = "https"
	KindSyslog = "syslog"
)

// Sink configures one collector.
type Sink struct {
	Name string
	Kind string // KindHTTPS or KindSyslog
	// URL is https://... or, for syslog, tcp://host:port or tls://host:port.
	URL         string
	Events      bool
	Tenants     []string       // empty: every tenant
	MinSeverity audit.Severity // "" sends every finding and incident
	Headers     map[string]string
	Gzip        bool
	Facility    int
	// CAFile, ServerName and InsecureSkipVerify configure TLS.
	CAFile, ServerName     string
	InsecureSkipVerify     bool
	Timeout                time.Duration // default 10s
	MinBackoff, MaxBackoff time.Duration // defaults 1s and 5m
}

// EventSource is the event stream as a SIEM sink reads it: a detached
// consumer that never counts for backpressure.
type EventSource interface {
	Read(ctx context.Context, after uint64, max int) ([]audit.Record, error)
	Offset(ctx context.Context, consumer string) (uint64, error)
	Commit(ctx context.Context, consumer string, seq uint64) error
	RemoveConsumer(ctx context.Context, consumer string) error
	Consumers(prefix string) []string
	Last() uint64
}

// Options configures a Service.
type Options struct {
	Store audit.SIEMStore // required
	// Stream is required when a sink streams events; ConsumerPrefix is the
	// prefix that makes its consumers detached.
	Stream         EventSource
	ConsumerPrefix string
	Sinks          []Sink
	// Webhooks says whether the webhook fan-out also reads the change log
	// (so pruning waits for it too).
	Webhooks bool
	// Poll is how often an idle sink looks for records; default 1s.
	Poll time.Duration
	// BatchMax is the most records per batch; default 500.
	BatchMax int
	// MaxChanges and MaxChangeAge bound the change log; defaults 100,000
	// and 7 days. MaxEventLag bounds a sink's raw-event lag; default 200,000.
	MaxChanges   int
	MaxChangeAge time.Duration
	MaxEventLag  int
	// Hostname is the syslog HOSTNAME; "-" when empty.
	Hostname   string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// transport sends one batch; nil error means the collector took it.
type transport interface {
	deliver(ctx context.Context, sink, batch string, lines []Line) error
	close()
}

type sink struct {
	Sink
	t transport
}

// Service runs the sinks.
type Service struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	sinks []*sink

	delivered *prometheus.CounterVec
	failed    *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	lag       *prometheus.GaugeVec
}

// New validates the sinks and builds their transports.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("siem: Store is required")
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.BatchMax <= 0 {
		opts.BatchMax = 500
	}
	if opts.MaxChanges <= 0 {
		opts.MaxChanges = 100_000
	}
	if opts.MaxChangeAge <= 0 {
		opts.MaxChangeAge = 7 * 24 * time.Hour
	}
	if opts.MaxEventLag <= 0 {
		opts.MaxEventLag = 200_000
	}
	s := &Service{opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, c := range opts.Sinks {
		if c.Timeout <= 0 {
			c.Timeout = 10 * time.Second
		}
		if c.MinBackoff <= 0 {
			c.MinBackoff = time.Second
		}
		if c.MaxBackoff <= 0 {
			c.MaxBackoff = 5 * time.Minute
		}
		c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
		if c.Events && (opts.Stream == nil || opts.ConsumerPrefix == "") {
			return nil, fmt.Errorf("siem sink %s: events need an event stream that supports detached consumers", c.Name)
		}
		tc, err := tlsConfig(c)
		if err != nil {
			return nil, fmt.Errorf("siem sink %s: %w", c.Name, err)
		}
		var t transport
		switch c.Kind {
		case KindHTTPS:
			t = newHTTPS(c, tc)
		case KindSyslog:
			if t, err = newSyslog(c, tc, opts.Hostname); err != nil {
				return nil, fmt.Errorf("siem sink %s: %w", c.Name, err)
			}
		default:
			return nil, fmt.Errorf("siem sink %s: kind %q is not https or syslog", c.Name, c.Kind)
		}
		s.sinks = append(s.sinks, &sink{Sink: c, t: t})
	}
	s.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_siem_delivered_total",
		Help: "Records a SIEM collector accepted, by sink and type (finding, incident, event, gap)."}, []string{"sink", "type"})
	s.failed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_siem_failures_total",
		Help: "Failed SIEM delivery attempts (retried with backoff), by sink."}, []string{"sink"})
	s.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_siem_dropped_total",
		Help: "Records discarded unsent because a SIEM sink lagged beyond its bound, by sink and stream (changes, events)."}, []string{"sink", "stream"})
	s.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_siem_lag",
		Help: "Records not yet accepted by a SIEM sink's collector, by sink and stream (changes, events)."}, []string{"sink", "stream"})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.delivered, s.failed, s.dropped, s.lag} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register siem metrics: %w", err)
			}
		}
	}
	return s, nil
}

func tlsConfig(c Sink) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // operator's explicit choice, documented as tests only
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Close releases the sinks' connections.
func (s *Service) Close() error {
	for _, k := range s.sinks {
		k.t.close()
	}
	return nil
}

func (s *Service) consumer(name string) string { return s.opts.ConsumerPrefix + name }

// Prepare records the configured sinks: new ones start at the newest
// change and event, removed ones (and sinks no longer streaming events)
// release what they held.
func (s *Service) Prepare(ctx context.Context) error {
	names := make([]string, 0, len(s.sinks))
	for _, k := range s.sinks {
		names = append(names, k.Name)
	}
	if err := s.opts.Store.RegisterSIEMSinks(ctx, names); err != nil {
		return err
	}
	if s.opts.Stream == nil || s.opts.ConsumerPrefix == "" {
		return nil
	}
	existing := s.opts.Stream.Consumers(s.opts.ConsumerPrefix)
	for _, c := range existing {
		keep := slices.ContainsFunc(s.sinks, func(k *sink) bool { return k.Events && s.consumer(k.Name) == c })
		if !keep {
			if err := s.opts.Stream.RemoveConsumer(ctx, c); err != nil {
				return err
			}
		}
	}
	for _, k := range s.sinks {
		if k.Events && !slices.Contains(existing, s.consumer(k.Name)) {
			if err := s.opts.Stream.Commit(ctx, s.consumer(k.Name), s.opts.Stream.Last()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run delivers until ctx ends: one worker per sink, and the change log's
// pruning. Prepare must have run.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, k := range s.sinks {
		wg.Go(func() { s.runSink(ctx, k) })
	}
	wg.Go(func() { s.runPrune(ctx) })
	wg.Wait()
}

func (s *Service) runPrune(ctx context.Context) {
	for {
		if err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "prune the change log", slog.String("error", err.Error()))
		}
		if !sleep(ctx, time.Minute) {
			return
		}
	}
}

// Prune deletes changes every reader has passed and enforces the bound.
func (s *Service) Prune(ctx context.Context) error {
	res, err := s.opts.Store.PruneChanges(ctx, s.opts.Webhooks, s.opts.MaxChanges, s.now().Add(-s.opts.MaxChangeAge))
	if err != nil {
		return err
	}
	for holder, n := range res.Skipped {
		if n == 0 {
			continue
		}
		if slices.ContainsFunc(s.sinks, func(k *sink) bool { return k.Name == holder }) {
			s.dropped.WithLabelValues(holder, "changes").Add(float64(n))
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "change log bound reached: changes dropped before they were sent",
			slog.String("reader", holder), slog.Int64("changes", n))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runSink repeats steps, backing off after failures.
func (s *Service) runSink(ctx context.Context, k *sink) {
	failures := 0
	for ctx.Err() == nil {
		n, err := s.step(ctx, k)
		switch {
		case err != nil && ctx.Err() == nil:
			s.failed.WithLabelValues(k.Name).Inc()
			wait := backoff(k.MinBackoff, k.MaxBackoff, failures)
			failures++
			s.log.LogAttrs(ctx, slog.LevelWarn, "siem delivery failed; retrying", slog.String("sink", k.Name),
				slog.Int("failures", failures), slog.Duration("retry_in", wait), slog.String("error", err.Error()))
			if !sleep(ctx, wait) {
				return
			}
		case err != nil:
			return
		case n == 0:
			failures = 0
			if !sleep(ctx, s.opts.Poll) {
				return
			}
		default:
			failures = 0
		}
	}
}

// backoff is min doubled per failure up to max, jittered to between half
// and all of it.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for range min(failures, 40) {
		d *= 2
		if d >= hi {
			d = hi
			break
		}
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

// step sends one batch of changes and one of events; it returns how many
// records it moved past.
func (s *Service) step(ctx context.Context, k *sink) (int, error) {
	n, err := s.stepChanges(ctx, k)
	if err != nil || !k.Events {
		return n, err
	}
	m, err := s.stepEvents(ctx, k)
	return n + m, err
}

func (k *sink) wantsTenant(t string) bool {
	return len(k.Tenants) == 0 || slices.Contains(k.Tenants, t)
}

func (s *Service) stepChanges(ctx context.Context, k *sink) (int, error) {
	cur, err := s.opts.Store.SIEMCursor(ctx, k.Name)
	if err != nil {
		return 0, err
	}
	changes, err := s.opts.Store.ChangesAfter(ctx, cur.Changes, s.opts.BatchMax)
	if err != nil {
		return 0, err
	}
	if last, err := s.opts.Store.LastChange(ctx); err == nil {
		s.lag.WithLabelValues(k.Name, "changes").Set(float64(max(0, last-cur.Changes)))
	}
	var lines []Line
	if gap := cur.ChangesDropped - cur.ChangesReported; gap > 0 {
		lines = append(lines, gapLine(k.Name, "changes", gap, s.now()))
	}
	for _, c := range changes {
		if !k.wantsTenant(c.Tenant) || (k.MinSeverity != "" && c.Severity.Rank() < k.MinSeverity.Rank()) {
			continue
		}
		lines = append(lines, changeLine(k.Name, c))
	}
	if len(changes) == 0 && len(lines) == 0 {
		return 0, nil
	}
	upTo := cur.Changes
	if len(changes) > 0 {
		upTo = changes[len(changes)-1].Seq
	}
	if len(lines) > 0 { // else every change was filtered out: only the cursor moves
		batch := fmt.Sprintf("%s-c%d-%d", k.Name, cur.Changes+1, upTo)
		if err := k.t.deliver(ctx, k.Name, batch, lines); err != nil {
			return 0, err
		}
		s.count(k, lines)
	}
	if err := s.opts.Store.CommitSIEMChanges(context.WithoutCancel(ctx), k.Name, upTo, cur.ChangesDropped); err != nil {
		return 0, err
	}
	return max(len(changes), 1), nil
}

func (s *Service) count(k *sink, lines []Line) {
	for _, l := range lines {
		s.delivered.WithLabelValues(k.Name, l.Type).Inc()
	}
}

func (s *Service) stepEvents(ctx context.Context, k *sink) (int, error) {
	name := s.consumer(k.Name)
	off, err := s.opts.Stream.Offset(ctx, name)
	if err != nil {
		return 0, err
	}
	last := s.opts.Stream.Last()
	if last > off && last-off > uint64(s.opts.MaxEventLag) {
		skip := last - uint64(s.opts.MaxEventLag)
		if err := s.skipEvents(ctx, k, off, skip, "lag bound reached"); err != nil {
			return 0, err
		}
		off = skip
	}
	s.lag.WithLabelValues(k.Name, "events").Set(float64(last - min(off, last)))
	recs, err := s.opts.Stream.Read(ctx, off, s.opts.BatchMax)
	if err != nil {
		return 0, err
	}
	if len(recs) > 0 && recs[0].Seq > off+1 {
		// Records the stream no longer holds (it kept none for a
		// consumer registered after they were trimmed).
		if err := s.skipEvents(ctx, k, off, recs[0].Seq-1, "records no longer in the stream"); err != nil {
			return 0, err
		}
	}
	cur, err := s.opts.Store.SIEMCursor(ctx, k.Name)
	if err != nil {
		return 0, err
	}
	var lines []Line
	gap := cur.EventsDropped - cur.EventsReported
	if gap > 0 {
		lines = append(lines, gapLine(k.Name, "events", gap, s.now()))
	}
	for _, r := range recs {
		if k.wantsTenant(r.Event.Tenant) {
			lines = append(lines, eventLine(k.Name, r))
		}
	}
	upTo := off
	if len(recs) > 0 {
		upTo = recs[len(recs)-1].Seq
	}
	if len(lines) > 0 {
		batch := fmt.Sprintf("%s-e%d-%d", k.Name, off+1, upTo)
		if err := k.t.deliver(ctx, k.Name, batch, lines); err != nil {
			return 0, err
		}
		s.count(k, lines)
	}
	wctx := context.WithoutCancel(ctx)
	if gap > 0 {
		if err := s.opts.Store.CommitSIEMEventGap(wctx, k.Name, cur.EventsDropped); err != nil {
			return 0, err
		}
	}
	if upTo > off {
		if err := s.opts.Stream.Commit(wctx, name, upTo); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}

// skipEvents moves a sink's event position from off to to, counting the
// records in between as dropped.
func (s *Service) skipEvents(ctx context.Context, k *sink, off, to uint64, why string) error {
	n := int64(to - off)
	if err := s.opts.Store.AddSIEMEventGap(ctx, k.Name, n); err != nil {
		return err
	}
	if err := s.opts.Stream.Commit(ctx, s.consumer(k.Name), to); err != nil {
		return err
	}
	s.dropped.WithLabelValues(k.Name, "events").Add(float64(n))
	s.log.LogAttrs(ctx, slog.LevelWarn, "siem sink skipped raw events: "+why, slog.String("sink", k.Name),
		slog.Int64("events", n), slog.Uint64("from", off+1), slog.Uint64("to", to))
	return nil
}
