// Package watch loads enrichment data files (MaxMind databases, ASN tables,
// IP lists) and reloads each one when it changes on disk, without a restart
// and without blocking lookups.
//
// A Set polls the modification time and size of its files every Interval.
// When a file changed, it is loaded again in the background; on success the
// Set hands the adapter a fresh slice of every loaded value (OnSwap), which
// the adapter turns into an immutable snapshot behind an atomic.Pointer.
// Lookups therefore never wait for a load. When a load fails — a missing,
// truncated or corrupt file — the last good value stays in service and the
// failure is logged, counted and shown in Status.
package watch

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is how often files are checked when Options.Interval is 0.
const DefaultInterval = time.Minute

// Status describes one configured data file: what is loaded from it and
// whether the last attempt to load it failed. It is what GET /v1/status
// (from the background readiness check) and `vigil config check` print.
type Status struct {
	// Source is the name of the adapter that owns the file ("geoip").
	Source string `json:"source"`
	// Path is the configured file path.
	Path string `json:"path"`
	// Kind is the detected format, e.g. "GeoIP2-City", "dbip-city",
	// "asn-csv" or "ip-list".
	Kind string `json:"kind,omitempty"`
	// Loaded reports whether a version of the file is in service.
	Loaded bool `json:"loaded"`
	// BuildTime is when the data was built, when the format records it
	// (MaxMind metadata), else the file's modification time.
	BuildTime time.Time `json:"build_time,omitzero"`
	// ModTime and Size are those of the file version in service.
	ModTime time.Time `json:"mod_time,omitzero"`
	Size    int64     `json:"size,omitempty"`
	// Entries counts the records in service (networks, ranges, regexes).
	Entries int `json:"entries,omitempty"`
	// LoadedAt is when the version in service was loaded.
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// LoadDuration is how long that load took.
	LoadDuration time.Duration `json:"load_duration,omitempty"`
	// LastError is the most recent failure to load the file, "" when the
	// latest attempt succeeded. With Loaded set it means a stale but good
	// version is still in service.
	LastError string `json:"last_error,omitempty"`
}

// Meta is what a Loader reports about the file it loaded.
type Meta struct {
	Kind      string
	BuildTime time.Time
	Entries   int
}

// Loader reads one file. It must not keep the file open or mapped after it
// returns, so that the file can be replaced or rewritten in place at any
// time. It runs in the background and may be slow.
type Loader[T any] func(path string) (T, Meta, error)

// Options configures a Set.
type Options[T any] struct {
	// Source names the owner in logs, metrics and Status ("geoip").
	Source string
	// Paths are the files, in order; OnSwap receives values in this order.
	Paths []string
	// Load reads one file.
	Load Loader[T]
	// OnSwap receives every currently loaded value (in Paths order, files
	// that never loaded left out) after the initial load and after each
	// successful reload. Calls are serialised.
	OnSwap func(values []T)
	// Interval between checks for changed files: DefaultInterval when 0;
	// a negative value disables the background check (Poll still works).
	Interval time.Duration
	// Logger receives load failures (Warn) and reloads (Info); nil discards.
	Logger *slog.Logger
	// Registerer receives vigil_enrich_file_loads_total and
	// vigil_enrich_file_loaded; nil means no metrics.
	Registerer prometheus.Registerer
	// Now is the clock for Status times; time.Now when nil.
	Now func() time.Time
}

type file[T any] struct {
	path    string
	value   T
	have    bool
	modTime time.Time // of the last attempt, loaded or not
	size    int64
	tried   bool
	status  Status
}

// Set is a group of watched files. Create it with New and stop it with Close.
type Set[T any] struct {
	o     Options[T]
	mu    sync.Mutex // serialises Poll, guards files
	files []*file[T]
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	// swapped is set after the first OnSwap, which runs even when no file
	// could be loaded so that the adapter always has a snapshot.
	swapped bool

	loads  *prometheus.CounterVec
	loaded prometheus.Gauge
}

// New loads every file once, synchronously, calls OnSwap, and starts the
// background check. A file that fails to load is not an error: it is
// reported by Status and retried when it changes. New fails only when
// Options are unusable.
func New[T any](o Options[T]) (*Set[T], error) {
	if o.Load == nil || o.OnSwap == nil {
		return nil, errors.New("watch: Load and OnSwap are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	s := &Set[T]{o: o, stop: make(chan struct{}), done: make(chan struct{})}
	for _, p := range o.Paths {
		s.files = append(s.files, &file[T]{path: p, status: Status{Source: o.Source, Path: p}})
	}
	if err := s.register(o.Registerer); err != nil {
		return nil, err
	}
	s.Poll()
	if o.Interval > 0 {
		go s.loop()
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Set[T]) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	labels := prometheus.Labels{"source": s.o.Source}
	s.loads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_enrich_file_loads_total", ConstLabels: labels,
		Help: "Loads of enrichment data files by result (ok, error).",
	}, []string{"result"})
	s.loaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_enrich_files_loaded", ConstLabels: labels,
		Help: "Configured enrichment data files that have a version in service.",
	})
	return errors.Join(reg.Register(s.loads), reg.Register(s.loaded))
}

func (s *Set[T]) loop() {
	defer close(s.done)
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Poll()
		}
	}
}

// Poll checks every file once and reloads those whose modification time or
// size changed (or that never loaded and now exist). It reports whether
// anything new went into service. The background loop calls it every
// Interval; tests and a SIGHUP handler may call it directly.
func (s *Set[T]) Poll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, f := range s.files {
		if s.check(f) {
			changed = true
		}
	}
	if changed || !s.swapped {
		s.swapped = true
		var vals []T
		n := 0
		for _, f := range s.files {
			if f.have {
				vals = append(vals, f.value)
				n++
			}
		}
		s.o.OnSwap(vals)
		if s.loaded != nil {
			s.loaded.Set(float64(n))
		}
	}
	return changed
}

// check loads f again when it changed; it reports whether a new version went
// into service.
func (s *Set[T]) check(f *file[T]) bool {
	fi, err := os.Stat(f.path)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = "file does not exist"
		}
		if f.tried && f.modTime.IsZero() && f.status.LastError == msg {
			return false // unchanged failure, already logged
		}
		f.tried, f.modTime, f.size = true, time.Time{}, 0
		s.fail(f, errors.New(msg))
		return false
	}
	if f.tried && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return false
	}
	f.tried, f.modTime, f.size = true, fi.ModTime(), fi.Size()
	start := s.o.Now()
	v, meta, err := s.o.Load(f.path)
	if err != nil {
		s.fail(f, err)
		return false
	}
	f.value, f.have = v, true
	bt := meta.BuildTime
	if bt.IsZero() {
		bt = fi.ModTime()
	}
	now := s.o.Now()
	f.status = Status{
		Source: s.o.Source, Path: f.path, Kind: meta.Kind, Loaded: true, BuildTime: bt.UTC(),
		ModTime: fi.ModTime().UTC(), Size: fi.Size(), Entries: meta.Entries,
		LoadedAt: now.UTC(), LoadDuration: now.Sub(start),
	}
	if s.loads != nil {
		s.loads.WithLabelValues("ok").Inc()
	}
	s.o.Logger.LogAttrs(context.Background(), slog.LevelInfo, "enrichment data loaded",
		slog.String("source", s.o.Source), slog.String("path", f.path), slog.String("kind", meta.Kind),
		slog.Int("entries", meta.Entries), slog.Duration("duration", now.Sub(start)))
	return true
}

func (s *Set[T]) fail(f *file[T], err error) {
	f.status.LastError = err.Error()
	if s.loads != nil {
		s.loads.WithLabelValues("error").Inc()
	}
	msg := "enrichment data file failed to load; its fields stay empty"
	if f.have {
		msg = "enrichment data file failed to reload; the previous version stays in service"
	}
	s.o.Logger.LogAttrs(context.Background(), slog.LevelWarn, msg,
		slog.String("source", s.o.Source), slog.String("path", f.path), slog.String("error", err.Error()))
}

// Status describes every configured file, in Paths order.
func (s *Set[T]) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, len(s.files))
	for i, f := range s.files {
		out[i] = f.status
	}
	return out
}

// Close stops the background check and waits for it to finish. It is
// idempotent. Values already handed to OnSwap stay valid.
func (s *Set[T]) Close() error {
	s.once.Do(func() {
		if s.o.Interval > 0 {
			close(s.stop)
		}
	})
	<-s.done
	return nil
}
