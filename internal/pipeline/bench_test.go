package pipeline_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/integrity"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/rules"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// BenchmarkDrain measures the server's per-event pipeline cost after the
// durable append: enrichment, detection with the built-in pack in event-time
// order, the detection checkpoint into SQLite and the store of events
// (through the tamper-evidence recorder), findings and incidents (as the
// server wires it), on a mixed stream (10 tenants, 20,000 actors, stuffing waves). Each iteration
// appends a chunk of 5,000 events and drains it, so a checkpoint follows
// every chunk as the running pipeline's periodic one does under load (and,
// since Drain ends caught up, the events the engine still holds for
// event-time order are evaluated then too).
// cpu-ns/event counts the process's CPU, background GC and SQLite included;
// on a shared machine it is the steadier figure.
//
// pace=replay replays a past stream at about 2 events a second of event
// time: a drain ends caught up with the stream and evaluates every event
// the engine still holds for event-time order, as a replay does.
// pace=live is traffic arriving as it happens, about 500 events a second of
// event time from now on: a drain ends by evaluating only the held events
// the wall clock has passed, as a server keeping up with its senders does,
// so the checkpoint after each drain persists the events still held.
func BenchmarkDrain(b *testing.B) {
	b.Run("pace=replay", func(b *testing.B) {
		benchDrain(b, newStreamGen(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), 42), false)
	})
	b.Run("pace=live", func(b *testing.B) {
		g := newStreamGen(time.Now().Truncate(time.Millisecond), 42)
		g.step = 2 * time.Millisecond
		benchDrain(b, g, true)
	})
}

// liveEngine is a detection engine whose Flush, which Drain calls once it
// has caught up, evaluates only the held events the wall clock has passed,
// as the running pipeline's Advance does.
type liveEngine struct{ *detect.Engine }

func (e liveEngine) Flush(ctx context.Context) ([]audit.Finding, error) {
	return e.Advance(ctx, time.Now())
}

func benchDrain(b *testing.B, g *streamGen, live bool) {
	const chunk = 5000
	db, err := sqlite.Open(b.Context(), sqlite.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	eng, err := detect.New(detect.Options{Rules: rules.MustBuiltin(), StateStore: db})
	if err != nil {
		b.Fatal(err)
	}
	rec, err := integrity.New(integrity.Options{Events: db.Events(), Store: db, Retention: db,
		Signer: integrity.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))})
	if err != nil {
		b.Fatal(err)
	}
	st := memstream.New(memstream.Options{})
	var det audit.Detector = eng
	if live {
		det = liveEngine{eng}
	}
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: rec, Findings: db, Incidents: db, Detector: det, Enricher: uaEnricher{}})
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]*audit.Event, chunk)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	n := 0
	for b.Loop() {
		for i := range evs {
			evs[i] = g.next()
		}
		if _, err := st.Append(b.Context(), evs); err != nil {
			b.Fatal(err)
		}
		if err := p.Drain(b.Context()); err != nil {
			b.Fatal(err)
		}
		n += chunk
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/event")
}

// processCPU is the process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// streamGen produces a deterministic mixed login stream: actors log in
// from their home address and city, fail now and then, and one block of
// 1,000 events in eight is a stuffing wave from datacenter addresses.
type streamGen struct {
	r    *rand.Rand
	t    time.Time
	step time.Duration // mean time between two events; 500 ms unless set
	n    int
	geo  []audit.Geo
}

func newStreamGen(start time.Time, seed uint64) *streamGen {
	g := &streamGen{r: rand.New(rand.NewPCG(seed, seed)), t: start, step: 500 * time.Millisecond}
	for i := range 20 {
		g.geo = append(g.geo, audit.Geo{Country: []string{"DE", "FR", "US", "GB", "JP"}[i%5], City: fmt.Sprintf("city%d", i),
			Latitude: float64(i*7%80 - 40), Longitude: float64(i*17%340 - 170), AccuracyKM: 20, HasLocation: true})
	}
	return g
}

func (g *streamGen) next() *audit.Event {
	g.n++
	g.t = g.t.Add(g.step*3/5 + time.Duration(g.r.Int64N(int64(g.step*4/5))))
	const tenants, actors = 10, 20000
	a := g.r.IntN(actors)
	ev := &audit.Event{ID: fmt.Sprintf("ev%09d", g.n), Tenant: fmt.Sprintf("t%d", a%tenants), Time: g.t, ReceivedAt: g.t,
		Actor: audit.Actor{ID: fmt.Sprintf("user%d@example.com", a)}}
	ip := netip.AddrFrom4([4]byte{10 + byte(a%200), byte(a / 200 % 256), byte(a % 7), 1 + byte(a%250)})
	geo := g.geo[a%len(g.geo)]
	switch wave := g.n/1000%8 == 7; {
	case wave && g.r.IntN(10) < 4:
		ev.Action, ev.Reason = audit.ActionLoginFailure, "invalid_password"
		ev.Tenant = "t0"
		ev.Actor.ID = fmt.Sprintf("user%d@example.com", g.r.IntN(actors)*tenants)
		ip = netip.AddrFrom4([4]byte{203, 0, 113, byte(g.r.IntN(64))})
		geo = g.geo[(a+7)%len(g.geo)]
	case g.r.IntN(100) < 12:
		ev.Action, ev.Reason = audit.ActionLoginFailure, "invalid_password"
	case g.r.IntN(100) < 70:
		ev.Action = audit.ActionLoginSuccess
		ev.Context.DeviceID = fmt.Sprintf("dev%d", a)
	default:
		ev.Action, ev.Reason = audit.ActionLogout, "user"
	}
	ev.Context.IP = ip
	ev.Context.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
	ev.Context.SessionID = fmt.Sprintf("s%d", a)
	ev.Enrichment.Geo = &geo
	ev.Normalize(ev.Time)
	return ev
}
