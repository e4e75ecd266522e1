package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/postgres"
)

// clusterNode is a node of an active/standby cluster: the PostgreSQL store
// with the ingest stream on NATS JetStream (stream.driver nats). Every node
// of the schema opens the stores, but only the node holding the schema's
// node lock is active — it serves the API and runs the pipeline, detection,
// alerts and the other background work; the others wait as standbys and
// the first to take the lock when it frees becomes active, resuming from
// the last detection checkpoint and the pipeline's committed position.
//
// Fencing: becoming active bumps the schema's epoch; detection checkpoints
// are written only under the epoch the node took (postgres FencedState),
// and the pipeline's stream position moves only from the revision the
// node read (natsstream), so a paused node that lost its lock cannot write
// stale state over its successor's. It stops when it finds out.
type clusterNode struct {
	pg     *postgres.Store
	stream *natsstream.Stream
	url    string
	schema string
	name   string
	addr   string
	// advertise is how other nodes reach this one (an http(s) URL), ""
	// when it cannot be known (an unspecified listen host and no
	// server.advertise_url).
	advertise string
	version   string
	started   time.Time
	log       *slog.Logger

	active atomic.Bool
	mu     sync.Mutex
	lock   *postgres.NodeLock
	epoch  int64
	holder string // while standby: who is active, as far as it can tell
	// target is where a standby forwards requests: the active node's
	// advertised URL, nil when unknown.
	target *url.URL
	proxy  *httputil.ReverseProxy
	// units runs this node's share of partitioned detection; nil without.
	units *unitManager
	// writeTimeout bounds each write of a forwarded answer
	// (limits.export_write_timeout), headerTimeout the wait for its start
	// (server.write_timeout).
	writeTimeout, headerTimeout time.Duration
}

// nodeMetrics registers the node's role gauges.
func (n *clusterNode) register(r prometheus.Registerer) {
	r.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_node_active",
			Help: "1 when this node is the active node of its PostgreSQL schema (runs the pipeline and background work), 0 while it is a standby."},
			func() float64 {
				if n.active.Load() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_node_epoch",
			Help: "The epoch this node took when it became active (0 while standby); each takeover increases it."},
			func() float64 {
				n.mu.Lock()
				defer n.mu.Unlock()
				return float64(n.epoch)
			}),
	)
}

// nodeName is server.node_name, or the host name and the listen address.
func nodeName(configured, addr string) string {
	if configured != "" {
		return configured
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "vigil"
	}
	return host + "/" + addr
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// advertiseURL is how other nodes reach a node listening on addr: the
// configured URL, or http:// and the listen address when that names one
// host; "" when neither says.
func advertiseURL(configured, addr string) string {
	if configured != "" {
		return strings.TrimSuffix(configured, "/")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		return ""
	}
	return "http://" + addr
}

// forwardedBy is the header a standby adds to the requests it forwards,
// naming itself: a node that is not active answers a forwarded request
// itself instead of forwarding it again, so two standbys that each think
// the other active cannot pass a request back and forth.
const forwardedBy = "Vigil-Forwarded-By"

// proxyTarget is the request context key of the URL a standby forwards the
// request to: read once, under the lock, by the handler that decided to
// forward it, since the target may change (or go) meanwhile.
type proxyTarget struct{}

// newProxy makes the reverse proxy a standby forwards requests through, to
// the target the handler put in the request's context. headerTimeout
// bounds the wait for the active node's answer to begin (its own write
// timeout bounds how late that can be).
func (n *clusterNode) newProxy(headerTimeout time.Duration) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(proxyTarget{}).(*url.URL))
			pr.Out.Host = pr.In.Host // the name the client used, for the active node's links
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedBy, n.name)
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ResponseHeaderTimeout: headerTimeout,
		},
		// Exports and other streamed answers pass through as they come.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" {
				// Never sent: safe for any client to retry.
				w.Header().Set("Retry-After", "1")
				httpx.WriteError(w, r, n.log, audit.Errorf(audit.EUNAVAILABLE,
					"this node is a standby and could not reach the active node to forward the request (%v); retry", err))
				return
			}
			// Sent, and no answer came back: the active node may have done
			// it. 502, which clients retry only when the request is safe
			// to repeat (503 promises that nothing was done).
			httpx.WriteJSON(w, http.StatusBadGateway, map[string]any{"error": httpx.Body(audit.Errorf(audit.EUNAVAILABLE,
				"this node is a standby and lost the active node's answer to the forwarded request (%v): it may have been carried out", err),
				httpx.RequestID(r.Context()))})
		},
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
}

// standbyHandler answers while the node waits: alive, not ready, and every
// other request forwarded to the active node when its address is known,
// else refused with who is active, so that a client or load balancer that
// reaches a standby is still served, or retries elsewhere.
func (n *clusterNode) standbyHandler(reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{"ready": false, "role": "standby"}
		if m := n.units; m != nil {
			// A standby with partitioned detection works: say on what.
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			defer cancel()
			body["units"], body["lag_events"] = m.held(), m.backlog(ctx)
		}
		httpx.WriteJSON(w, http.StatusServiceUnavailable, body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	n.proxy = n.newProxy(n.headerTimeout)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		holder, target := n.holder, n.target
		n.mu.Unlock()
		if target != nil && r.Header.Get(forwardedBy) == "" && target.Host != n.addr {
			// Once the answer starts, each write gets its own deadline, as
			// the active node gives its exports: the server's write timeout,
			// counted from the request, would cut a long export short.
			n.proxy.ServeHTTP(httpx.NewLazyDeadlineWriter(w, n.writeTimeout), r.WithContext(context.WithValue(r.Context(), proxyTarget{}, target)))
			return
		}
		if holder == "" {
			holder = "another node"
		}
		w.Header().Set("Retry-After", "5")
		httpx.WriteError(w, r, n.log, audit.Errorf(audit.EUNAVAILABLE,
			"this node is a standby: %s is active; send requests there (this node takes over when it stops)", holder))
	})
	return mux
}

// awaitActive waits, as a standby, until this node holds the schema's node
// lock, then takes a new epoch and fences the detection state with it.
func (a *App) awaitActive(ctx context.Context) error {
	n := a.stores.node
	logged := ""
	lock, err := postgres.WaitNodeLock(ctx, n.url, n.schema, time.Second, func(holder string, err error) {
		var target *url.URL
		if err != nil {
			holder = "unknown (" + err.Error() + ")"
		} else if named, at := n.activeNode(ctx); named != "" {
			holder, target = named, at
		}
		n.mu.Lock()
		n.holder, n.target = holder, target
		n.mu.Unlock()
		if holder != logged {
			logged = holder
			a.log.LogAttrs(ctx, slog.LevelInfo, "standby: waiting to become the active node", slog.String("active", holder), slog.String("node", n.name))
		}
	})
	if err != nil {
		return err
	}
	epoch, err := n.pg.BeginEpoch(ctx)
	if err != nil {
		return errors.Join(fmt.Errorf("take a new node epoch: %w", err), lock.Release())
	}
	lock.SetEpoch(epoch)
	n.mu.Lock()
	n.lock, n.epoch, n.holder, n.target = lock, epoch, "", nil
	n.mu.Unlock()
	a.stores.State = n.pg.FencedState(epoch)
	n.active.Store(true)
	a.log.LogAttrs(ctx, slog.LevelInfo, "this node is now the active node", slog.String("node", n.name), slog.Int64("epoch", epoch))
	return nil
}

// activeNode names the active node from the heartbeats, with its address
// ("" when none is known: the lock's holder as PostgreSQL sees it is only
// a client address), and the URL to forward requests to (nil when its
// address is not one).
func (n *clusterNode) activeNode(ctx context.Context) (string, *url.URL) {
	nodes, err := n.pg.Nodes(ctx)
	if err != nil {
		return "", nil
	}
	var active *postgres.Node
	for i, o := range nodes {
		if o.Role == postgres.RoleActive && o.Name != n.name && time.Since(o.Seen) <= StaleAfter && (active == nil || o.Epoch > active.Epoch) {
			active = &nodes[i]
		}
	}
	if active == nil {
		return "", nil
	}
	var target *url.URL
	if u, err := url.Parse(active.Address); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		target = u
	}
	return fmt.Sprintf("node %s (%s)", active.Name, active.Address), target
}

// heartbeats records the node in the schema's node table every two
// seconds until ctx ends, for `vigil cluster status`; lag, when given,
// is the pipeline's backlog.
func (n *clusterNode) heartbeats(ctx context.Context, lag func(context.Context) int64) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		role, epoch := "standby", int64(0)
		if n.active.Load() {
			n.mu.Lock()
			role, epoch = "active", n.epoch
			n.mu.Unlock()
		}
		l := int64(-1)
		switch {
		case n.units != nil:
			// Each node reports the backlog of the units it runs.
			l = n.units.backlog(ctx)
		case lag != nil && role == "active":
			l = lag(ctx)
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		addr := n.advertise
		if addr == "" {
			addr = n.addr
		}
		err := n.pg.Heartbeat(hctx, postgres.Node{Name: n.name, Address: addr, Role: role, Version: n.version,
			Epoch: epoch, Started: n.started, Seen: time.Now(), Lag: l})
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.LogAttrs(ctx, slog.LevelWarn, "could not record this node's heartbeat", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchLock checks, every interval, that this node still holds its lock
// under its epoch; it returns an error once it does not (wrapping
// audit.ErrFenced when another node has become active), which stops this
// node.
func (n *clusterNode) watchLock(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n.mu.Lock()
		lock := n.lock
		n.mu.Unlock()
		// Any failure means the lock connection was lost and could not be
		// taken back (a ping that fails alone is retaken at once): another
		// node may be active already, so this one stops.
		if err := lock.Check(ctx); err != nil && ctx.Err() == nil {
			n.active.Store(false)
			return fmt.Errorf("this node is no longer the active node: %w", err)
		}
	}
}

// backlog is the pipeline's backlog on the stream, -1 when unknown.
func (n *clusterNode) backlog(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	last, committed, err := n.stream.Backlog(ctx)
	if err != nil || committed > last {
		return -1
	}
	return int64(last - committed)
}

// switchHandler serves the standby handler, then the real one.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// ClusterStatus is what `vigil cluster status` reports: the nodes of the
// PostgreSQL schema, from their heartbeats, and the NATS stream.
type ClusterStatus struct {
	Schema string          `json:"schema"`
	Nodes  []postgres.Node `json:"nodes"`
	// Active names the active node, "" when no node has said it is
	// active within StaleAfter.
	Active string             `json:"active"`
	Stream *natsstream.Status `json:"stream,omitempty"`
	// Units are partitioned detection's units (docs/cluster.md) and the
	// node running each; empty when detection has never run partitioned
	// on the schema.
	Units []postgres.Unit `json:"units,omitempty"`
	// StreamError says why the stream could not be read.
	StreamError string `json:"stream_error,omitempty"`
}

// StaleAfter is how old a heartbeat may be for its node to count as up:
// nodes beat every two seconds.
const StaleAfter = 10 * time.Second

// Cluster reads the cluster's state for `vigil cluster status`.
func Cluster(ctx context.Context, cfg config.Config, now time.Time) (*ClusterStatus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if cfg.Storage.Driver != "postgres" {
		return nil, audit.Errorf(audit.EINVALID, "cluster status needs storage.driver postgres: the embedded store serves one node")
	}
	pc := cfg.Storage.Postgres
	pg, err := postgres.Open(ctx, postgres.Options{URL: pc.URL, Schema: pc.Schema, MaxConns: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL store (schema %s): %w", pc.Schema, err)
	}
	defer pg.Close()
	nodes, err := pg.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	units, err := pg.Units(ctx)
	if err != nil {
		return nil, err
	}
	st := &ClusterStatus{Schema: pc.Schema, Nodes: nodes, Units: units}
	// A node that stopped or lost its lock keeps its last "active" row
	// until it expires: the active node is the one with the newest epoch.
	var epoch int64
	for _, n := range nodes {
		if n.Role == postgres.RoleActive && now.Sub(n.Seen) <= StaleAfter && n.Epoch > epoch {
			st.Active, epoch = n.Name, n.Epoch
		}
	}
	if cfg.Stream.Driver == "nats" {
		nc := cfg.Stream.NATS
		st.Stream, err = natsstream.Inspect(ctx, natsstream.Options{URL: nc.URL, CredsFile: nc.CredsFile, Name: nc.Name,
			Subject: nc.Subject, Partitions: nc.Partitions, Replicas: nc.Replicas, DuplicateWindow: nc.DuplicateWindow, Timeout: nc.Timeout,
			MaxBytes: int64(nc.MaxBytes)})
		if err != nil {
			st.StreamError = err.Error()
		}
	}
	return st, nil
}

// clusterStateNS holds what the nodes of a schema must agree on.
const clusterStateNS = "cluster"

// checkSharedKeys makes the nodes of a schema use the same node-local
// keys: the webhook key (webhook signing secrets are derived from it) and
// the integrity signing key (checkpoints must verify on every node). The
// first node to become active records their fingerprints; a node whose
// files differ refuses to become active, naming the file to copy.
func (a *App) checkSharedKeys(ctx context.Context) error {
	type shared struct{ name, file, fingerprint string }
	var keys []shared
	dir := a.cfg.Storage.SQLite.Dir
	if a.cfg.Alerts.Enabled {
		b, err := os.ReadFile(filepath.Join(dir, WebhookKeyFile))
		if err != nil {
			return fmt.Errorf("read the webhook key: %w", err)
		}
		sum := sha256.Sum256(bytes.TrimSpace(b))
		keys = append(keys, shared{"webhook-key", filepath.Join(dir, WebhookKeyFile), hex.EncodeToString(sum[:8])})
	}
	signer, _, err := LoadIntegrityKeys(filepath.Join(dir, IntegrityDir))
	if err != nil {
		return err
	}
	keys = append(keys, shared{"integrity-signing-key", filepath.Join(dir, IntegrityDir), signer.KeyID()})
	puts := map[string][]byte{}
	for _, k := range keys {
		got, err := a.stores.State.GetState(ctx, clusterStateNS, k.name)
		if err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
			return fmt.Errorf("read the cluster's %s fingerprint: %w", k.name, err)
		}
		switch {
		case got == nil:
			puts[k.name] = []byte(k.fingerprint)
		case string(got) != k.fingerprint:
			return audit.Errorf(audit.EINVALID,
				"this node's %s (%s, fingerprint %s) differs from the one the other nodes of schema %s use (%s): copy it from a node that has served this schema before starting this one (docs/cluster.md)",
				k.name, k.file, k.fingerprint, a.cfg.Storage.Postgres.Schema, got)
		}
	}
	if len(puts) > 0 {
		if err := a.stores.State.SaveState(ctx, clusterStateNS, puts, nil); err != nil {
			return fmt.Errorf("record the cluster's key fingerprints: %w", err)
		}
	}
	return nil
}
