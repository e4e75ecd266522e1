package detect

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus instruments. They are registered on
// Options.Registerer when one is given and work unregistered otherwise.
type metrics struct {
	events, late, skipped, findings, opened prometheus.Counter
	keysDropped, keysEvicted                prometheus.Counter
	entriesDropped, evalErrors              prometheus.Counter
	keys, profiles                          prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "vigil", Subsystem: "detect", Name: name, Help: help})
	}
	m := &metrics{
		events:         c("events_total", "Events evaluated by the detection engine."),
		late:           c("late_events_total", "Events that arrived after later events of their tenant had been evaluated: evaluated late, in their own time, and noted on the tenant's findings."),
		skipped:        c("replayed_records_total", "Records skipped because their Seq was already processed."),
		findings:       c("findings_emitted_total", "Finding versions emitted (opened or updated)."),
		opened:         c("findings_opened_total", "Findings opened."),
		keysDropped:    c("keys_dropped_total", "New keys not tracked because the key caps were reached even after eviction."),
		keysEvicted:    c("keys_evicted_total", "Least recently used keys evicted at a tenant's or the installation's key cap."),
		entriesDropped: c("window_entries_dropped_total", "Window events dropped because a key reached MaxWindowEvents."),
		evalErrors:     c("eval_errors_total", "Rule expression evaluation errors (treated as false) and corrupt profiles."),
	}
	if reg != nil {
		for _, x := range []prometheus.Collector{m.events, m.late, m.skipped, m.findings, m.opened, m.keysDropped, m.keysEvicted, m.entriesDropped, m.evalErrors} {
			_ = reg.Register(x) // a second engine on one registry keeps the first's series
		}
	}
	return m
}

// registerGauges adds gauges that read engine sizes.
func (e *Engine) registerGauges(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	e.m.keys = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "vigil", Subsystem: "detect", Name: "keys",
		Help: "Keyed window, sequence and suppression states held."}, func() float64 {
		e.mu.RLock()
		defer e.mu.RUnlock()
		return float64(len(e.keys))
	})
	e.m.profiles = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "vigil", Subsystem: "detect", Name: "profiles",
		Help: "Actor profiles held in memory."}, func() float64 {
		e.mu.RLock()
		defer e.mu.RUnlock()
		return float64(len(e.profiles))
	})
	_ = reg.Register(e.m.keys)
	_ = reg.Register(e.m.profiles)
}
