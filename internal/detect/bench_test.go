package detect_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
)

// BenchmarkProcess measures detection cost per event with the whole
// built-in pack on a realistic mixed stream (10k users, stuffing bursts).
func BenchmarkProcess(b *testing.B) {
	recs := genStream(200000, 10000, 42)
	e := newEngine(b, detect.Options{})
	batch := make([]*audit.Record, 0, 256)
	i := 0
	seq := uint64(0)
	shift := time.Duration(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		n++
		if i == len(recs) {
			i = 0
			shift += 60 * 24 * time.Hour // replay later in event time
		}
		r := *recs[i]
		i++
		seq++
		r.Seq = seq
		r.Event.Time = r.Event.Time.Add(shift)
		r.Event.Risk = nil
		batch = append(batch[:0], &r)
		if _, err := e.Process(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/event")
}

// cpuTime is the process's user+system CPU time: unlike wall time it does
// not count time other processes on a shared machine took, and it does
// count the garbage collector's background work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProcessBatch is BenchmarkProcess with records handed over in
// batches of 256, as the pipeline's consumer does.
func BenchmarkProcessBatch(b *testing.B) {
	recs := genStream(200000, 10000, 42)
	e := newEngine(b, detect.Options{})
	const size = 256
	batch := make([]*audit.Record, size)
	buf := make([]audit.Record, size)
	i, seq := 0, uint64(0)
	shift := time.Duration(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		for j := range size {
			if i == len(recs) {
				i = 0
				shift += 60 * 24 * time.Hour
			}
			buf[j] = *recs[i]
			i++
			seq++
			buf[j].Seq = seq
			buf[j].Event.Time = buf[j].Event.Time.Add(shift)
			buf[j].Event.Risk = nil
			batch[j] = &buf[j]
		}
		n += size
		if _, err := e.Process(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/event")
}

// BenchmarkScore measures the synchronous risk endpoint's cost.
func BenchmarkScore(b *testing.B) {
	recs := genStream(50000, 5000, 43)
	e := newEngine(b, detect.Options{})
	run(b, e, clone(recs), 1000)
	probe := recs[100].Event
	probe.Action = audit.ActionLoginSuccess
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Score(&probe)
	}
}

// BenchmarkActorMemory measures the engine's heap per tracked actor at 1M
// actors with three logins each, two days apart (run with -benchtime=1x).
// The heap holds the encoded profiles and whatever keyed state the last
// round's logins still keep (sessions for 12 h, addresses for 10 min).
func BenchmarkActorMemory(b *testing.B) {
	const actors = 1_000_000
	for b.Loop() {
		// Room for every session's state: at the default cap (1M keys) the
		// last round's sessions would be refused and counted instead.
		e := newEngine(b, detect.Options{MaxKeys: 4 * actors})
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		batch := make([]*audit.Record, 0, 1024)
		seq := uint64(0)
		for round := range 3 { // three logins per actor from home
			for a := range actors {
				seq++
				c := cities[a%len(cities)]
				ev := audit.Event{ID: fmt.Sprintf("m%d", seq), Tenant: fmt.Sprintf("t%d", a%16), Action: audit.ActionLoginSuccess,
					// In time order over ten hours: an event far behind its
					// tenant's newest would be late and create no profile.
					Time:  t0.Add(time.Duration(round)*48*time.Hour + time.Duration(a)*36*time.Millisecond),
					Actor: audit.Actor{ID: fmt.Sprintf("user%07d@example.com", a)},
					Context: audit.Context{IP: netip.AddrFrom4([4]byte{100, byte(64 + a%60), byte(a >> 8), byte(a)}), UserAgent: "Mozilla/5.0",
						SessionID: fmt.Sprintf("s%d", seq), AuthMethod: "password", DeviceID: fmt.Sprintf("d%d", a)},
					Enrichment: audit.Enrichment{Geo: &audit.Geo{Country: c.country, City: c.name, Latitude: c.lat, Longitude: c.lon, HasLocation: true, AccuracyKM: 20},
						Network: &audit.Network{ASN: c.asn, ASOrg: c.org, Scope: audit.ScopePublic}, UserAgent: &audit.UserAgent{Class: audit.UAClassBrowser, Browser: "Chrome", OS: "Windows"}}}
				ev.Normalize(ev.Time)
				batch = append(batch, &audit.Record{Seq: seq, Event: ev})
				if len(batch) == cap(batch) {
					if _, err := e.Process(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
		}
		if _, err := e.Process(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		batch = nil
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/actors, "heap-B/actor")
		b.ReportMetric(float64(e.ProfileCount()), "profiles")
		// A day later (one event per tenant that no rule keys on) every
		// window has expired: what stays is the profiles.
		// Two rounds of ticks: keys of a tenant whose clock lags the
		// installation's are looked at again an hour later.
		var ticks []*audit.Record
		for _, at := range []time.Duration{5 * 24 * time.Hour, 5*24*time.Hour + 2*time.Hour} {
			for tn := range 16 {
				seq++
				ev := audit.Event{ID: fmt.Sprintf("tick%d", seq), Tenant: fmt.Sprintf("t%d", tn), Action: "custom.tick", Time: t0.Add(at)}
				ev.Normalize(ev.Time)
				ticks = append(ticks, &audit.Record{Seq: seq, Event: ev})
			}
		}
		if _, err := e.Process(b.Context(), ticks); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/actors, "profile-heap-B/actor")
		runtime.KeepAlive(e)
	}
}
