package pipeline_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// windowStream is an in-memory EventStream whose dedupe holds only within
// a window, as NATS JetStream's: expire ends the window, after which an
// event appended again becomes a new record. With loseCommits set, Commit
// records nothing, as if the process died just before it.
type windowStream struct {
	mu          sync.Mutex
	recs        []audit.Record // recs[i].Seq == i+1
	window      map[audit.EventKey]bool
	offsets     map[string]uint64
	notify      chan struct{}
	loseCommits bool
}

var (
	_ audit.EventStream    = (*windowStream)(nil)
	_ audit.StreamStats    = (*windowStream)(nil)
	_ audit.WindowedDedupe = (*windowStream)(nil)
)

func newWindowStream() *windowStream {
	return &windowStream{window: map[audit.EventKey]bool{}, offsets: map[string]uint64{}, notify: make(chan struct{})}
}

func (s *windowStream) DedupeWindow() time.Duration { return 2 * time.Minute }

// expire ends the dedupe window of everything appended so far.
func (s *windowStream) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.window)
}

func (s *windowStream) setLoseCommits(lose bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseCommits = lose
}

func (s *windowStream) Append(_ context.Context, events []*audit.Event) ([]audit.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]audit.AppendResult, len(events))
	for i, ev := range events {
		k := audit.EventKey{Tenant: ev.Tenant, ID: ev.ID}
		if s.window[k] {
			out[i].Duplicate = true
			continue
		}
		s.window[k] = true
		s.recs = append(s.recs, audit.Record{Seq: uint64(len(s.recs) + 1), Event: *ev})
		out[i].Seq = uint64(len(s.recs))
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return out, nil
}

func (s *windowStream) Read(_ context.Context, after uint64, max int) ([]audit.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if after >= uint64(len(s.recs)) {
		return nil, nil
	}
	end := min(int(after)+max, len(s.recs))
	return slices.Clone(s.recs[after:end]), nil
}

func (s *windowStream) Wait(ctx context.Context, after uint64) error {
	s.mu.Lock()
	last, ch := uint64(len(s.recs)), s.notify
	s.mu.Unlock()
	if last > after {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *windowStream) Offset(_ context.Context, consumer string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[consumer], nil
}

func (s *windowStream) Commit(_ context.Context, consumer string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loseCommits {
		s.offsets[consumer] = max(s.offsets[consumer], seq)
	}
	return nil
}

func (s *windowStream) Backlog(context.Context) (last, committed uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last = uint64(len(s.recs))
	committed = last
	for _, o := range s.offsets {
		committed = min(committed, o)
	}
	return last, committed, nil
}

func (s *windowStream) Close() error { return nil }

// watchedStore is the PostgreSQL store, counting receipt lookups and
// recording the events handed to InsertEvents; while gate is open (not
// closed), InsertEvents waits, as a slow store would.
type watchedStore struct {
	*postgres.Store
	mu       sync.Mutex
	lookups  int
	inserted []string
	gate     chan struct{}
}

func openWatched(t *testing.T) *watchedStore {
	t.Helper()
	url, schema := pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &watchedStore{Store: s}
}

func (w *watchedStore) StoredReceipts(ctx context.Context, keys []audit.EventKey) (map[audit.EventKey]time.Time, error) {
	w.mu.Lock()
	w.lookups++
	w.mu.Unlock()
	return w.Store.StoredReceipts(ctx, keys)
}

func (w *watchedStore) InsertEvents(ctx context.Context, events []audit.Event) error {
	w.mu.Lock()
	gate := w.gate
	w.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	for _, ev := range events {
		w.inserted = append(w.inserted, ev.ID)
	}
	w.mu.Unlock()
	return w.Store.InsertEvents(ctx, events)
}

func (w *watchedStore) lookupCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lookups
}

func (w *watchedStore) insertedIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.inserted)
}

// dedupeEvent is an event of tenant acme raising one finding (recorder),
// received at the given time.
func dedupeEvent(id string, received time.Time) *audit.Event {
	return &audit.Event{ID: id, Tenant: "acme", Action: "x.finding", Actor: audit.Actor{ID: "u"},
		Time: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), ReceivedAt: received}
}

func appendTo(t *testing.T, st audit.EventStream, evs ...*audit.Event) {
	t.Helper()
	if _, err := st.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
}

// receivedAt returns when the stored copy of id was received.
func receivedAt(t *testing.T, s *watchedStore, id string) time.Time {
	t.Helper()
	ev, err := s.GetEvent(t.Context(), "acme", id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return ev.ReceivedAt
}

// newDedupePipeline returns a pipeline on st and s that checkpoints only
// at the end of a Drain and at shutdown, so that no checkpoint barrier
// holds detection back behind a slow store.
func newDedupePipeline(t *testing.T, st audit.EventStream, s *watchedStore, det *recorder, batch int) (*pipeline.Pipeline, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: s, Findings: s, Detector: det, Enricher: uaEnricher{},
		BatchSize: batch, CheckpointEvery: time.Hour, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg
}

func (r *recorder) seenSeqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// Receipt times: recv1 the first receipts, recv2 and later the clients' late
// re-sends.
var (
	recv1 = time.Date(2026, 3, 2, 9, 0, 1, 111111111, time.UTC)
	recv2 = recv1.Add(time.Hour)
	recv3 = recv2.Add(time.Hour)
)

// TestWindowedStreamDropsLateDuplicates: on a stream whose dedupe holds
// only within a window, an event sent again after the window (another
// receipt) is dropped before detection and storage, and so is a repeat
// within one batch; a batch of nothing but duplicates still moves the
// committed position. The counter counts each drop.
func TestWindowedStreamDropsLateDuplicates(t *testing.T) {
	s := openWatched(t)
	st := newWindowStream()
	det := &recorder{}
	p, reg := newDedupePipeline(t, st, s, det, 10)
	drain := func() {
		t.Helper()
		if err := p.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	appendTo(t, st, dedupeEvent("a", recv1), dedupeEvent("b", recv1), dedupeEvent("c", recv1))
	drain()
	// After the window: a again (stored, other receipt), d, and, after
	// another window, d again in the same batch.
	st.expire()
	appendTo(t, st, dedupeEvent("a", recv2), dedupeEvent("d", recv2))
	st.expire()
	appendTo(t, st, dedupeEvent("d", recv3), dedupeEvent("e", recv3))
	drain()
	if got, want := det.seenSeqs(), []uint64{1, 2, 3, 5, 7}; !slices.Equal(got, want) {
		t.Fatalf("detector saw seqs %v, want %v (not 4, a late a, nor 6, a repeated d)", got, want)
	}
	if got, want := s.insertedIDs(), []string{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("events handed to the store: %v, want %v", got, want)
	}
	if at := receivedAt(t, s, "a"); !at.Equal(recv1) {
		t.Fatalf("a stored as received at %s, want the first receipt %s", at, recv1)
	}
	if at := receivedAt(t, s, "d"); !at.Equal(recv2) {
		t.Fatalf("d stored as received at %s, want its first receipt %s", at, recv2)
	}
	fs, err := s.SearchFindings(t.Context(), audit.FindingFilter{Tenant: "acme"})
	if err != nil || len(fs.Findings) != 5 {
		t.Fatalf("%d findings (%v), want one per event", len(fs.Findings), err)
	}
	if got := counter(t, reg, "vigil_pipeline_duplicates_dropped_total"); got != 2 {
		t.Fatalf("duplicates dropped counter %v, want 2", got)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 7 {
		t.Fatalf("offset %d, want 7", off)
	}

	// A read of nothing but duplicates is committed past all the same.
	st.expire()
	appendTo(t, st, dedupeEvent("b", recv3), dedupeEvent("e", recv3.Add(time.Second)))
	drain()
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 9 {
		t.Fatalf("offset after a batch of duplicates %d, want 9", off)
	}
	if lag := gauge(t, reg, "vigil_pipeline_store_lag_events"); lag != 0 {
		t.Fatalf("store lag after a batch of duplicates %v, want 0", lag)
	}
	if got := len(det.seenSeqs()); got != 5 {
		t.Fatalf("detector saw %d records, want still 5", got)
	}
	if got := counter(t, reg, "vigil_pipeline_duplicates_dropped_total"); got != 4 {
		t.Fatalf("duplicates dropped counter %v, want 4", got)
	}
	if got := len(s.insertedIDs()); got != 5 {
		t.Fatalf("%d events handed to the store, want still 5", got)
	}
}

// TestWindowedStreamDropsRepeatsOfUnstoredBatches: detection runs up to
// two batches ahead of storage (one being stored, one waiting), so a
// repeat of an event whose batch is not stored yet is not found in the
// store; it is dropped all the same.
func TestWindowedStreamDropsRepeatsOfUnstoredBatches(t *testing.T) {
	s := openWatched(t)
	gate := make(chan struct{})
	s.gate = gate
	st := newWindowStream()
	det := &recorder{}
	p, reg := newDedupePipeline(t, st, s, det, 2)
	appendTo(t, st, dedupeEvent("x0", recv1), dedupeEvent("x1", recv1), dedupeEvent("y0", recv1), dedupeEvent("y1", recv1))
	st.expire()
	appendTo(t, st, dedupeEvent("x0", recv2), dedupeEvent("z", recv2))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// The third batch is detected while the first waits at the store and
	// the second waits for it.
	waitFor(t, "the third batch to be detected", func() bool { return slices.Contains(det.seenSeqs(), 6) })
	if got := s.lookupCount(); got != 3 {
		t.Fatalf("%d receipt lookups, want one per batch", got)
	}
	if got := len(s.insertedIDs()); got != 0 {
		t.Fatalf("%d events stored while the store was held", got)
	}
	close(gate)
	waitFor(t, "the events to be stored", func() bool { return len(s.insertedIDs()) >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := det.seenSeqs(), []uint64{1, 2, 3, 4, 6}; !slices.Equal(got, want) {
		t.Fatalf("detector saw seqs %v, want %v", got, want)
	}
	if got, want := s.insertedIDs(), []string{"x0", "x1", "y0", "y1", "z"}; !slices.Equal(got, want) {
		t.Fatalf("events handed to the store: %v, want %v", got, want)
	}
	if at := receivedAt(t, s, "x0"); !at.Equal(recv1) {
		t.Fatalf("x0 stored as received at %s, want %s", at, recv1)
	}
	if got := counter(t, reg, "vigil_pipeline_duplicates_dropped_total"); got != 1 {
		t.Fatalf("duplicates dropped counter %v, want 1", got)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 6 {
		t.Fatalf("offset after shutdown %d, want 6", off)
	}
}

// TestWindowedStreamReplaysStoredUncommittedRecords: after a crash between
// storing and committing, a new pipeline reads the stored records again;
// they carry the receipts they were stored with, so the detector (resumed
// from the checkpoint before them) evaluates them again, while the late
// duplicate among them is dropped again.
func TestWindowedStreamReplaysStoredUncommittedRecords(t *testing.T) {
	s := openWatched(t)
	st := newWindowStream()
	appendTo(t, st, dedupeEvent("a", recv1), dedupeEvent("b", recv1))
	st.expire()
	appendTo(t, st, dedupeEvent("a", recv2), dedupeEvent("c", recv2))

	st.setLoseCommits(true)
	first := &recorder{}
	p1, _ := newDedupePipeline(t, st, s, first, 10)
	if err := p1.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 0 {
		t.Fatalf("offset %d; the crash should have lost the commit", off)
	}

	st.setLoseCommits(false)
	second := &recorder{}
	p2, reg := newDedupePipeline(t, st, s, second, 10)
	if err := p2.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 2, 4}
	if got := first.seenSeqs(); !slices.Equal(got, want) {
		t.Fatalf("first run's detector saw seqs %v, want %v", got, want)
	}
	if got := second.seenSeqs(); !slices.Equal(got, want) {
		t.Fatalf("replay's detector saw seqs %v, want the same %v", got, want)
	}
	if got := counter(t, reg, "vigil_pipeline_duplicates_dropped_total"); got != 1 {
		t.Fatalf("replay's duplicates dropped counter %v, want 1", got)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 4 {
		t.Fatalf("offset after the replay %d, want 4", off)
	}
	if at := receivedAt(t, s, "a"); !at.Equal(recv1) {
		t.Fatalf("a stored as received at %s, want %s", at, recv1)
	}
}

// TestWindowedStreamRetriesAFailedBatchWhole: a batch whose detection
// failed is read again, and its records are not taken for repeats of
// themselves.
func TestWindowedStreamRetriesAFailedBatchWhole(t *testing.T) {
	s := openWatched(t)
	st := newWindowStream()
	det := &recorder{failProcess: 1}
	p, reg := newDedupePipeline(t, st, s, det, 10)
	appendTo(t, st, dedupeEvent("a", recv1), dedupeEvent("b", recv1))
	if err := p.Drain(t.Context()); err == nil {
		t.Fatal("Drain succeeded through a failing detector")
	}
	if err := p.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := det.seenSeqs(), []uint64{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("detector saw seqs %v, want %v", got, want)
	}
	if got := counter(t, reg, "vigil_pipeline_duplicates_dropped_total"); got != 0 {
		t.Fatalf("duplicates dropped counter %v, want 0", got)
	}
}

// TestWindowedStreamWithoutDetector: a pipeline that only stores drops
// late duplicates too, and a batch of nothing but them has nothing to
// store (no findings store is needed).
func TestWindowedStreamWithoutDetector(t *testing.T) {
	s := openWatched(t)
	st := newWindowStream()
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{recv1, recv2} {
		st.expire()
		appendTo(t, st, dedupeEvent("a", at))
		if err := p.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 2 {
		t.Fatalf("offset %d, want 2", off)
	}
	if got := s.insertedIDs(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("events handed to the store: %v, want [a]", got)
	}
}

// TestStreamWithPermanentDedupeMakesNoReceiptLookups: a stream that
// dedupes for as long as it keeps events needs no lookup, even from a
// store that could answer one.
func TestStreamWithPermanentDedupeMakesNoReceiptLookups(t *testing.T) {
	s := openWatched(t)
	st := memstream.New(memstream.Options{})
	det := &recorder{}
	p, reg := newDedupePipeline(t, st, s, det, 2)
	appendTo(t, st, dedupeEvent("a", recv1), dedupeEvent("b", recv1), dedupeEvent("c", recv1))
	if err := p.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.lookupCount(); got != 0 {
		t.Fatalf("%d receipt lookups, want none", got)
	}
	if got := len(det.seenSeqs()); got != 3 {
		t.Fatalf("detector saw %d records, want 3", got)
	}
	if got := counter(t, reg, "vigil_pipeline_duplicates_dropped_total"); got != 0 {
		t.Fatalf("duplicates dropped counter %v, want 0", got)
	}
}

// TestWindowedStreamNeedsStoredReceipts: a pipeline on a windowed stream
// is refused a store that cannot look up receipts (the embedded store,
// whose own stream dedupes permanently).
func TestWindowedStreamNeedsStoredReceipts(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, err = pipeline.New(pipeline.Options{Stream: newWindowStream(), Events: db.Events()})
	if err == nil || !strings.Contains(err.Error(), "StoredReceipts") {
		t.Fatalf("New: %v, want a refusal naming StoredReceipts", err)
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
