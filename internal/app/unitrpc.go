package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/integrity"
)

// unitRPC carries what the API asks of detection — a login's risk score,
// a tenant's learned egresses, a tuning reload, an erasure's profile and
// incident scrubbing — to the engine of the tenant's detection unit,
// wherever it runs: at once when this node runs the unit, else over HTTP
// to the node that does (POST /internal/v1/units/{unit}/{op}).
//
// Calls between nodes are authenticated with an HMAC-SHA256 over a
// timestamp, the path and the body, under a key derived from the server
// secret every node of the schema reads from PostgreSQL; a call more than
// a minute old or new is refused. Every operation is safe to repeat.
type unitRPC struct {
	m      *unitManager
	app    *App
	client *http.Client
	log    *slog.Logger

	mu  sync.Mutex
	key []byte // nil until the server secret is found

	omu      sync.Mutex
	ownersAt time.Time
	owners   map[string]string // unit → base URL of the node running it
}

// unitRPCPrefix is the path prefix of the calls between nodes.
const unitRPCPrefix = "/internal/v1/units/"

// unitAuthHeader carries a call's timestamp and MAC: "t=UNIX,mac=HEX".
const unitAuthHeader = "Vigil-Unit-Auth"

// unitAuthSkew is how far a call's timestamp may be from the receiver's
// clock.
const unitAuthSkew = time.Minute

// unitRPCMaxBody bounds a call's body: an event, or an erasure's values.
const unitRPCMaxBody = 4 << 20

// ownersTTL is how long the map of units to nodes is reused.
const ownersTTL = time.Second

// authKey is the key calls are signed with, derived from the server
// secret. A node never creates the secret (the active node does, when it
// first starts); until it exists no call can be signed or verified.
func (r *unitRPC) authKey(ctx context.Context) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.key != nil {
		return r.key, nil
	}
	secret, err := r.app.stores.node.pg.GetState(ctx, secretNS, secretKey)
	if err != nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "read the server secret that signs calls between nodes: %v", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("vigil detection unit calls v1"))
	r.key = mac.Sum(nil)
	return r.key, nil
}

// sign is the MAC of a call at unix time t.
func unitMAC(key []byte, t int64, path string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%d\n%s\n", t, path)
	mac.Write(body)
	return mac.Sum(nil)
}

// unitAuth is a call's parsed authentication header.
type unitAuth struct {
	t   int64
	sum []byte
}

// parseAuth reads a call's authentication header and checks its
// timestamp, before the body is read.
func parseAuth(req *http.Request) (unitAuth, error) {
	var a unitAuth
	for part := range strings.SplitSeq(req.Header.Get(unitAuthHeader), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			a.t, _ = strconv.ParseInt(v, 10, 64)
		case "mac":
			a.sum, _ = hex.DecodeString(v)
		}
	}
	if a.t == 0 || len(a.sum) == 0 {
		return a, audit.Errorf(audit.EUNAUTHENTICATED, "a call between nodes needs the %s header", unitAuthHeader)
	}
	if d := time.Since(time.Unix(a.t, 0)); d > unitAuthSkew || d < -unitAuthSkew {
		return a, audit.Errorf(audit.EUNAUTHENTICATED, "the call's timestamp is %s from this node's clock (at most %s): keep the nodes' clocks synchronised", d.Round(time.Second), unitAuthSkew)
	}
	return a, nil
}

// verify checks a call's signature over its timestamp, path and body.
func (r *unitRPC) verify(ctx context.Context, a unitAuth, path string, body []byte) error {
	key, err := r.authKey(ctx)
	if err != nil {
		return err
	}
	if !hmac.Equal(a.sum, unitMAC(key, a.t, path, body)) {
		return audit.Errorf(audit.EUNAUTHENTICATED, "the call's signature does not verify")
	}
	return nil
}

// ServeHTTP answers calls from other nodes for the units this node runs.
func (r *unitRPC) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if err := r.serve(w, req); err != nil {
		httpx.WriteError(w, req, r.log, err)
	}
}

func (r *unitRPC) serve(w http.ResponseWriter, req *http.Request) error {
	if req.Method != http.MethodPost {
		return audit.Errorf(audit.EINVALID, "calls between nodes are POST")
	}
	unit, op, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, unitRPCPrefix), "/")
	if !ok || unit == "" || op == "" {
		return audit.Errorf(audit.ENOTFOUND, "no such call between nodes")
	}
	auth, err := parseAuth(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, unitRPCMaxBody))
	if err != nil {
		return audit.Errorf(audit.ETOOLARGE, "a call between nodes is at most %d bytes", unitRPCMaxBody)
	}
	if err := r.verify(req.Context(), auth, req.URL.Path, body); err != nil {
		return err
	}
	wk := r.m.worker(unit)
	if wk == nil || wk.engine == nil {
		return &audit.Error{Code: audit.ECONFLICT, Message: fmt.Sprintf("this node does not run detection unit %s", unit)}
	}
	out, err := r.apply(req.Context(), wk.engine, op, body)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Bodies of the calls.
type (
	egressCall struct {
		Tenant string `json:"tenant"`
		All    bool   `json:"all"`
	}
	tenantCall struct {
		Tenant string `json:"tenant"`
	}
	forgetCall struct {
		Tenant string `json:"tenant"`
		Actor  string `json:"actor"`
	}
	forgetResult struct {
		Forgot bool `json:"forgot"`
	}
	scrubCall struct {
		Tenant string   `json:"tenant"`
		Values []string `json:"values"`
	}
)

// apply runs one operation on a local engine.
func (r *unitRPC) apply(ctx context.Context, e *detect.Engine, op string, body []byte) (any, error) {
	decode := func(v any) error {
		if err := json.Unmarshal(body, v); err != nil {
			return audit.Errorf(audit.EINVALID, "the body of call %s: %v", op, err)
		}
		return nil
	}
	switch op {
	case "score":
		var ev audit.Event
		if err := decode(&ev); err != nil {
			return nil, err
		}
		return e.ScoreContext(ctx, &ev), nil
	case "egresses":
		var c egressCall
		if err := decode(&c); err != nil {
			return nil, err
		}
		return e.Egresses(c.Tenant, c.All), nil
	case "tuning":
		var c tenantCall
		if err := decode(&c); err != nil {
			return nil, err
		}
		return struct{}{}, loadTuning(ctx, e, r.app.stores.Rules, c.Tenant)
	case "forget":
		var c forgetCall
		if err := decode(&c); err != nil {
			return nil, err
		}
		forgot, err := e.ForgetProfile(ctx, c.Tenant, c.Actor)
		return forgetResult{Forgot: forgot}, err
	case "scrub":
		var c scrubCall
		if err := decode(&c); err != nil {
			return nil, err
		}
		e.RewriteOpenIncidents(c.Tenant, integrity.NewScrubber(c.Values).Incident)
		return struct{}{}, nil
	}
	return nil, audit.Errorf(audit.ENOTFOUND, "no call %q between nodes", op)
}

// call runs op on the engine of unit: here when this node runs it, else
// on the node that does, found in the unit table (trying once more after
// the unit moved). out receives the result.
func (r *unitRPC) call(ctx context.Context, unit, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var last error
	for try := 0; try < 2; try++ {
		if wk := r.m.worker(unit); wk != nil && wk.engine != nil {
			res, err := r.apply(ctx, wk.engine, op, body)
			if err != nil {
				return err
			}
			b, err := json.Marshal(res)
			if err != nil {
				return err
			}
			return json.Unmarshal(b, out)
		}
		base, err := r.owner(ctx, unit, try > 0)
		if err != nil {
			return err
		}
		if last = r.post(ctx, base, unit, op, body, out); last == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return last
}

// post makes one call to the node at base.
func (r *unitRPC) post(ctx context.Context, base, unit, op string, body []byte, out any) error {
	key, err := r.authKey(ctx)
	if err != nil {
		return err
	}
	path := unitRPCPrefix + unit + "/" + op
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	t := time.Now().Unix()
	req.Header.Set(unitAuthHeader, fmt.Sprintf("t=%d,mac=%s", t, hex.EncodeToString(unitMAC(key, t, path, body))))
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return audit.Errorf(audit.EUNAVAILABLE, "reach the node running detection unit %s: %v", unit, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, unitRPCMaxBody))
	if err != nil {
		return audit.Errorf(audit.EUNAVAILABLE, "read the answer of the node running detection unit %s: %v", unit, err)
	}
	if resp.StatusCode != http.StatusOK {
		return audit.Errorf(audit.EUNAVAILABLE, "the node running detection unit %s answered %s: %s", unit, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the answer of the node running detection unit %s: %w", unit, err)
	}
	return nil
}

// owner is the base URL of the node running unit, from the unit and node
// tables (reused for ownersTTL unless fresh is set).
func (r *unitRPC) owner(ctx context.Context, unit string, fresh bool) (string, error) {
	r.omu.Lock()
	defer r.omu.Unlock()
	if fresh || time.Since(r.ownersAt) > ownersTTL {
		pg := r.app.stores.node.pg
		units, err := pg.Units(ctx)
		if err != nil {
			return "", err
		}
		nodes, err := pg.Nodes(ctx)
		if err != nil {
			return "", err
		}
		addr := map[string]string{}
		for _, n := range nodes {
			if u, err := url.Parse(n.Address); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
				addr[n.Name] = strings.TrimSuffix(n.Address, "/")
			}
		}
		r.owners = map[string]string{}
		for _, u := range units {
			if u.Held && addr[u.Holder] != "" && u.Holder != r.m.n.name {
				r.owners[u.Name] = addr[u.Holder]
			}
		}
		r.ownersAt = time.Now()
	}
	if base := r.owners[unit]; base != "" {
		return base, nil
	}
	return "", &audit.Error{Code: audit.EUNAVAILABLE, Message: fmt.Sprintf(
		"detection unit %s is not running on a node this one can reach (it is moving between nodes, or its node has no http(s) advertise_url); retry", unit)}
}

// partitionedDetection is what the API gets of detection when it is
// partitioned: every call goes to the engine of the tenant's unit.
func (r *unitRPC) detection(rules *detect.Engine) *detection {
	parts := r.app.stores.node.stream.Partitions()
	unitOf := func(tenant string) string { return tenantUnit(tenant, parts) }
	return &detection{
		scorer: routedScorer{r},
		egresses: func(tenant string, all bool) []audit.Egress {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out []audit.Egress
			if err := r.call(ctx, unitOf(tenant), "egresses", egressCall{Tenant: tenant, All: all}, &out); err != nil {
				r.log.LogAttrs(ctx, slog.LevelWarn, "list a tenant's learned egresses", slog.String("tenant_id", tenant), slog.String("error", err.Error()))
				return nil
			}
			return out
		},
		rules:           rules.Rules(),
		validateSetting: rules.ValidateSetting,
		tuningChanged: func(ctx context.Context, tenant string) {
			// Both engines that read the tenant's tuning: its partition's
			// and the installation-wide one. A unit that moves meanwhile
			// loads the tuning where it starts; retried for a while in
			// the background until then.
			for _, unit := range []string{unitOf(tenant), installationUnit} {
				go r.retry(context.WithoutCancel(ctx), "reload a tenant's tuning", tenant, func(ctx context.Context) error {
					return r.call(ctx, unit, "tuning", tenantCall{Tenant: tenant}, &struct{}{})
				})
			}
		},
		forgetProfile: func(ctx context.Context, tenant, actor string) (bool, error) {
			var res forgetResult
			err := r.call(ctx, unitOf(tenant), "forget", forgetCall{Tenant: tenant, Actor: actor}, &res)
			return res.Forgot, err
		},
		scrubIncidents: func(ctx context.Context, tenant string, values []string) error {
			return r.call(ctx, unitOf(tenant), "scrub", scrubCall{Tenant: tenant, Values: values}, &struct{}{})
		},
	}
}

// retry runs fn every second for up to 30 s until it succeeds, and logs
// the last error if it never does.
func (r *unitRPC) retry(ctx context.Context, what, tenant string, fn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	for {
		if err = fn(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			r.log.LogAttrs(ctx, slog.LevelError, what, slog.String("tenant_id", tenant), slog.String("error", err.Error()))
			return
		case <-time.After(time.Second):
		}
	}
}

// routedScorer scores a login on the engine of its tenant's unit.
type routedScorer struct{ r *unitRPC }

// ScoreChecked implements httpapi.CheckedScorer. A login path waits for
// it: a unit this node runs scores directly, without the encoding a call
// to another node needs.
func (s routedScorer) ScoreChecked(ctx context.Context, ev *audit.Event) (audit.Risk, error) {
	unit := tenantUnit(ev.Tenant, s.r.app.stores.node.stream.Partitions())
	if wk := s.r.m.worker(unit); wk != nil && wk.engine != nil {
		return wk.engine.ScoreContext(ctx, ev), nil
	}
	var risk audit.Risk
	err := s.r.call(ctx, unit, "score", ev, &risk)
	return risk, err
}

// ScoreContext implements httpapi.Scorer; the API calls ScoreChecked.
func (s routedScorer) ScoreContext(ctx context.Context, ev *audit.Event) audit.Risk {
	risk, _ := s.ScoreChecked(ctx, ev)
	return risk
}
