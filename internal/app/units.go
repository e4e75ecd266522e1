package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/integrity"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/postgres"
)

// Partitioned detection (detect.partitioned on a cluster).
//
// The stream's partitions and the installation-wide rules are the
// cluster's detection units: "p0" … "pN-1" and "installation". Every node,
// active or standby, runs a unitManager that holds some of them
// (postgres.UnitLocks: one advisory lock each, a new epoch per take) and
// runs a unitWorker for each:
//
//   - "pK": an engine of the tenants' rules (detect.ScopeTenants) whose
//     state lives in its own namespace, written only under the unit's
//     epoch (postgres.UnitState), and a pipeline over partition K of the
//     stream (natsstream.Part) that stores the partition's events,
//     findings and incidents, and commits its own position;
//   - "installation": an engine of the installation-wide rules over the
//     whole stream (detect.ScopeInstallation), storing findings only.
//
// A tenant's events are all in one partition, in order, so each engine
// sees exactly the events one engine over everything would evaluate for
// its rules, in the same order, and finds the same.
//
// The units are spread evenly over the nodes whose heartbeats are recent:
// a node holding fewer than its share takes free units (in an order
// peculiar to it, so nodes do not all reach for the same one); a node
// holding more gives one back per round, after its pipeline has stored
// and checkpointed what it read. A node that dies frees its units with
// its lock connection, and others take them over from their last
// checkpoint and committed position. A node that was cut off and lost its
// locks learns it from UnitLocks.Check and stops those workers; meanwhile
// the unit's epoch fences its checkpoints and the stream position's
// compare-and-set fences its commits.

// partitioned reports whether a serving node of cfg runs partitioned
// detection: a cluster (PostgreSQL store, NATS stream) with
// detect.partitioned on.
func partitioned(cfg config.Config) bool {
	return cfg.Storage.Driver == "postgres" && cfg.Stream.Driver == "nats" && cfg.Detect.Partitioned
}

// installationUnit is the unit of the installation-wide rules, and
// installationConsumer its pipeline's consumer name on the stream.
const (
	installationUnit     = "installation"
	installationConsumer = "installation"
)

// detectionUnits lists the units of a stream of partitions partitions.
func detectionUnits(partitions int) []string {
	out := []string{installationUnit}
	for p := range partitions {
		out = append(out, partitionUnit(p))
	}
	return out
}

func partitionUnit(p int) string { return "p" + strconv.Itoa(p) }

// tenantUnit is the unit whose engine evaluates tenant's events.
func tenantUnit(tenant string, partitions int) string {
	return partitionUnit(natsstream.Partition(tenant, partitions))
}

// unitWorker runs one unit on this node.
type unitWorker struct {
	unit   string
	epoch  int64
	engine *detect.Engine // nil with detection off
	pipe   *pipeline.Pipeline
	// reg holds the worker's metrics, labelled with its unit; the node's
	// /metrics gathers it while the worker runs.
	reg *prometheus.Registry
	// view is the worker's partition of the stream, closed (its reading
	// consumer dropped) when the worker stops; nil for the installation.
	view   *natsstream.Part
	cancel context.CancelFunc
	done   chan error
}

// close drops the worker's view of the stream once its pipeline stopped.
func (w *unitWorker) close() {
	if w.view != nil {
		_ = w.view.Close()
	}
}

// unitManager holds and runs this node's detection units.
type unitManager struct {
	n     *clusterNode
	locks *postgres.UnitLocks
	units []string
	// build starts the worker of a unit just taken at epoch.
	build func(ctx context.Context, unit string, epoch int64) (*unitWorker, error)
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	workers map[string]*unitWorker
	closed  bool

	rpc *unitRPC
}

// run balances and watches the units every m.every until ctx ends, then
// stops every worker (each stores and checkpoints what it read) and gives
// its units back.
func (m *unitManager) run(ctx context.Context) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			m.stopAll()
			return
		case <-t.C:
		}
	}
}

// tick is one round: notice lost units and workers that stopped, then
// take or give back units towards this node's share.
func (m *unitManager) tick(ctx context.Context) {
	if err := m.locks.Check(ctx); err != nil && ctx.Err() == nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "lost detection units; stopping their work", slog.String("error", err.Error()))
	}
	held := m.locks.Held()
	type ended struct {
		w   *unitWorker
		err error // why it stopped by itself; nil for a unit lost
	}
	var gone []ended
	m.mu.Lock()
	for unit, w := range m.workers {
		var exited error
		select {
		case exited = <-w.done:
			if exited == nil {
				exited = errors.New("the pipeline stopped")
			}
		default:
		}
		if exited != nil || !slices.Contains(held, unit) {
			delete(m.workers, unit)
			gone = append(gone, ended{w, exited})
		}
	}
	m.mu.Unlock()
	for _, g := range gone {
		if g.err == nil {
			// Lost: its checkpoints and commits are refused now (the
			// unit's epoch moved), so stop it without giving anything back.
			g.w.cancel()
			<-g.w.done
			g.w.close()
			continue
		}
		g.w.close()
		m.log.LogAttrs(ctx, slog.LevelError, "detection unit stopped; giving it back", slog.String("unit", g.w.unit), slog.String("error", g.err.Error()))
		if err := m.locks.Release(ctx, g.w.unit); err != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "give back a detection unit", slog.String("unit", g.w.unit), slog.String("error", err.Error()))
		}
	}
	m.mu.Lock()
	mine := len(m.workers)
	m.mu.Unlock()
	if ctx.Err() != nil {
		return
	}

	live, err := m.liveNodes(ctx)
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "read the cluster's nodes", slog.String("error", err.Error()))
		return
	}
	share := (len(m.units) + live - 1) / live
	switch {
	case mine > share:
		m.giveBack(ctx)
	case mine < share:
		m.take(ctx, share-mine)
	}
}

// liveNodes counts the nodes of the schema whose heartbeat is recent,
// this one included.
func (m *unitManager) liveNodes(ctx context.Context) (int, error) {
	nodes, err := m.n.pg.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	live := 1
	for _, o := range nodes {
		if o.Name != m.n.name && time.Since(o.Seen) <= StaleAfter {
			live++
		}
	}
	return live, nil
}

// affinity orders units for a node: each node prefers units in an order
// of its own, so that nodes starting together reach for different units,
// and a unit given back tends to go where it went before.
func affinity(node, unit string) uint64 {
	h := sha256.Sum256([]byte(node + "\x00" + unit))
	return binary.BigEndian.Uint64(h[:8])
}

// take tries to take up to n units nobody holds.
func (m *unitManager) take(ctx context.Context, n int) {
	units, err := m.n.pg.Units(ctx)
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "read the detection units", slog.String("error", err.Error()))
		return
	}
	busy := map[string]bool{}
	for _, u := range units {
		busy[u.Name] = u.Held
	}
	var free []string
	for _, u := range m.units {
		if !busy[u] && m.worker(u) == nil {
			free = append(free, u)
		}
	}
	slices.SortFunc(free, func(a, b string) int { return cmp.Compare(affinity(m.n.name, b), affinity(m.n.name, a)) })
	for _, unit := range free {
		if n == 0 || ctx.Err() != nil {
			return
		}
		epoch, ok, err := m.locks.TryTake(ctx, unit)
		if err != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "take a detection unit", slog.String("unit", unit), slog.String("error", err.Error()))
			return
		}
		if !ok {
			continue // another node was quicker
		}
		w, err := m.build(ctx, unit, epoch)
		if err != nil {
			m.log.LogAttrs(ctx, slog.LevelError, "start a detection unit; giving it back", slog.String("unit", unit), slog.String("error", err.Error()))
			if rerr := m.locks.Release(ctx, unit); rerr != nil {
				m.log.LogAttrs(ctx, slog.LevelWarn, "give back a detection unit", slog.String("unit", unit), slog.String("error", rerr.Error()))
			}
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			m.stop(w)
			return
		}
		m.workers[unit] = w
		m.mu.Unlock()
		m.log.LogAttrs(ctx, slog.LevelInfo, "took a detection unit", slog.String("unit", unit), slog.Int64("epoch", epoch))
		n--
	}
}

// giveBack stops the worker of the unit this node cares least for and
// releases the unit.
func (m *unitManager) giveBack(ctx context.Context) {
	m.mu.Lock()
	var pick *unitWorker
	for _, w := range m.workers {
		if pick == nil || affinity(m.n.name, w.unit) < affinity(m.n.name, pick.unit) {
			pick = w
		}
	}
	if pick != nil {
		delete(m.workers, pick.unit)
	}
	m.mu.Unlock()
	if pick == nil {
		return
	}
	m.stop(pick)
	m.log.LogAttrs(ctx, slog.LevelInfo, "gave a detection unit back to balance the nodes", slog.String("unit", pick.unit))
}

// stop ends a worker (its pipeline stores and checkpoints what it read)
// and releases its unit.
func (m *unitManager) stop(w *unitWorker) {
	w.cancel()
	if err := <-w.done; err != nil {
		m.log.LogAttrs(context.Background(), slog.LevelWarn, "detection unit stopped with an error", slog.String("unit", w.unit), slog.String("error", err.Error()))
	}
	w.close()
	if err := m.locks.Release(context.Background(), w.unit); err != nil {
		m.log.LogAttrs(context.Background(), slog.LevelWarn, "give back a detection unit", slog.String("unit", w.unit), slog.String("error", err.Error()))
	}
}

// stopAll stops every worker, in parallel, and closes the locks.
func (m *unitManager) stopAll() {
	m.mu.Lock()
	m.closed = true
	ws := make([]*unitWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	clear(m.workers)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { m.stop(w) })
	}
	wg.Wait()
	if err := m.locks.Close(); err != nil {
		m.log.LogAttrs(context.Background(), slog.LevelWarn, "close the detection unit locks", slog.String("error", err.Error()))
	}
}

// worker is the running worker of unit on this node, nil when it runs
// elsewhere (or nowhere).
func (m *unitManager) worker(unit string) *unitWorker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.workers[unit]
}

// each calls fn for every worker of this node.
func (m *unitManager) each(fn func(*unitWorker)) {
	m.mu.Lock()
	ws := make([]*unitWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	slices.SortFunc(ws, func(a, b *unitWorker) int { return cmp.Compare(a.unit, b.unit) })
	for _, w := range ws {
		fn(w)
	}
}

// Flush makes every worker of this node evaluate the events its engine
// holds for event-time order and waits until their findings are stored.
func (m *unitManager) Flush(ctx context.Context) error {
	var errs []error
	m.each(func(w *unitWorker) {
		if err := w.pipe.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("unit %s: %w", w.unit, err))
		}
	})
	return errors.Join(errs...)
}

// held lists the units this node runs, sorted.
func (m *unitManager) held() []string {
	units := []string{}
	m.each(func(w *unitWorker) { units = append(units, w.unit) })
	return units
}

// backlog is how many events the units this node runs have not stored
// yet, -1 when the stream cannot tell.
func (m *unitManager) backlog(ctx context.Context) int64 {
	var sum int64
	ok := true
	m.each(func(w *unitWorker) {
		n, err := w.pipe.Backlog(ctx)
		if err != nil || n < 0 {
			ok = false
			return
		}
		sum += n
	})
	if !ok {
		return -1
	}
	return sum
}

// Gather implements prometheus.Gatherer over the workers' metrics.
func (m *unitManager) Gather() ([]*dto.MetricFamily, error) {
	var gs prometheus.Gatherers
	m.each(func(w *unitWorker) { gs = append(gs, w.reg) })
	return gs.Gather()
}

// unitDeps is what a node needs to run detection units.
type unitDeps struct {
	app      *App
	enricher audit.Enricher
	signer   *integrity.Signer
	keys     integrity.Keyring
}

// newUnitWorker builds and starts the worker of unit, taken at epoch.
func (d *unitDeps) newUnitWorker(ctx context.Context, unit string, epoch int64) (*unitWorker, error) {
	a, n := d.app, d.app.stores.node
	reg := prometheus.NewRegistry()
	wreg := prometheus.WrapRegistererWith(prometheus.Labels{"unit": unit}, reg)
	log := a.log.With("unit", unit)
	w := &unitWorker{unit: unit, epoch: epoch, reg: reg, done: make(chan error, 1)}
	units := len(detectionUnits(n.stream.Partitions()))
	popts := pipeline.Options{Enricher: d.enricher, Findings: a.stores.Findings, Incidents: a.stores.Incidents,
		Logger: log.With("component", "pipeline"), Registerer: wreg, Now: a.now, Linger: a.cfg.Ingest.BatchLinger}
	scope := detect.ScopeTenants
	if unit == installationUnit {
		scope = detect.ScopeInstallation
		popts.Stream, popts.Consumer, popts.FindingsOnly, popts.Events = n.stream, installationConsumer, true, a.stores.Events
	} else {
		p, err := strconv.Atoi(unit[1:])
		if err != nil || p < 0 || p >= n.stream.Partitions() {
			return nil, fmt.Errorf("unit %q names no partition of the stream", unit)
		}
		w.view = n.stream.Part(p)
		popts.Stream = w.view
		rec, err := integrity.New(integrity.Options{Events: a.stores.Events, Store: a.stores.Integrity, Retention: a.stores.Retention,
			Signer: d.signer, Keys: d.keys, Now: a.now, Logger: log.With("component", "integrity")})
		if err != nil {
			return nil, err
		}
		popts.Events = rec
	}
	if c := a.cfg.Detect; c.Enabled {
		state, ns := n.pg.UnitState(unit, epoch), "detect."+unit
		// The first time a unit runs, it starts from what the one engine
		// of unpartitioned detection had learned, if it ran before.
		owns := func(tenant string) bool {
			return unit != installationUnit && tenantUnit(tenant, n.stream.Partitions()) == unit
		}
		if seeded, err := detect.SeedState(ctx, state, detect.DefaultNamespace, ns, owns, unit == installationUnit); err != nil {
			return nil, fmt.Errorf("start unit %s from the unpartitioned detection state: %w", unit, err)
		} else if seeded {
			log.LogAttrs(ctx, slog.LevelInfo, "detection unit starts from the unpartitioned engine's state")
		}
		e, err := newScopedEngine(c, state, scope, ns, units, log, wreg)
		if err != nil {
			return nil, err
		}
		if err := d.loadUnitTuning(ctx, e, unit); err != nil {
			return nil, err
		}
		w.engine, popts.Detector = e, e
	}
	pipe, err := pipeline.New(popts)
	if err != nil {
		return nil, err
	}
	w.pipe = pipe
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	go func() { w.done <- pipe.Run(wctx) }()
	return w, nil
}

// loadUnitTuning hands the engine of unit its tenants' rule settings and
// allowlists; the installation-wide engine takes every tenant's, since a
// tenant may disable or tune an installation-wide rule for its events.
func (d *unitDeps) loadUnitTuning(ctx context.Context, e *detect.Engine, unit string) error {
	a := d.app
	tenants, err := a.stores.Tenants.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	parts := a.stores.node.stream.Partitions()
	for _, t := range tenants {
		if unit != installationUnit && tenantUnit(t.ID, parts) != unit {
			continue
		}
		if err := loadTuning(ctx, e, a.stores.Rules, t.ID); err != nil {
			return err
		}
	}
	return nil
}

// ProfileEngine is an engine whose actor profiles `vigil profiles rebuild`
// recomputes, with the tenants whose events it learns from.
type ProfileEngine struct {
	Engine *detect.Engine
	// Owns says whether the engine learns tenant's profiles.
	Owns func(tenant string) bool
	// Unit names the detection unit ("" without partitioned detection).
	Unit string
}

// ProfileEngines are the engines that keep actor profiles in state: the
// one engine, or, with detection partitioned over a cluster's nodes, the
// engine of each partition's unit (in its own namespace) — the
// installation-wide unit learns none.
func ProfileEngines(cfg config.Config, state audit.StateStore, log *slog.Logger) ([]ProfileEngine, error) {
	if !partitioned(cfg) {
		e, err := NewEngine(cfg.Detect, state, log, nil)
		if err != nil {
			return nil, err
		}
		return []ProfileEngine{{Engine: e, Owns: func(string) bool { return true }}}, nil
	}
	parts := cfg.Stream.NATS.Partitions
	units := len(detectionUnits(parts))
	var out []ProfileEngine
	for p := range parts {
		unit := partitionUnit(p)
		e, err := newScopedEngine(cfg.Detect, state, detect.ScopeTenants, "detect."+unit, units, log, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, ProfileEngine{Engine: e, Unit: unit, Owns: func(tenant string) bool { return tenantUnit(tenant, parts) == unit }})
	}
	return out, nil
}
