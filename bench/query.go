package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// QueryCase is one search shape measured on both systems.
type QueryCase struct {
	Name string
	// Params draws the parameters of one run.
	Params func(r *rand.Rand) QueryParams
}

// QueryParams is one concrete search.
type QueryParams struct {
	Tenant string
	Actor  string
	IP     netip.Addr
	CIDR   netip.Prefix
	Action string // exact, or a prefix ending in ".*"
	// Agg marks the aggregation: distinct failed actors per IP over the
	// 24 hours ending at Until, top 20.
	Agg   bool
	Until time.Time
}

// queryCases are the searches of issue 2's goals, with parameters drawn
// from the generator's population.
func queryCases(g *Gen) []QueryCase {
	actor := func(r *rand.Rand) int { return r.IntN(g.Actors) }
	v4Home := func(r *rand.Rand) (int, netip.Addr) {
		for {
			a := actor(r)
			if ip := g.HomeIP(a); ip.Is4() {
				return a, ip
			}
		}
	}
	return []QueryCase{
		{Name: "actor timeline (`actor=`)", Params: func(r *rand.Rand) QueryParams {
			a := actor(r)
			return QueryParams{Tenant: g.TenantOf(a), Actor: ActorID(a)}
		}},
		{Name: "one IP (`ip=a.b.c.d`)", Params: func(r *rand.Rand) QueryParams {
			a, ip := v4Home(r)
			return QueryParams{Tenant: g.TenantOf(a), IP: ip}
		}},
		{Name: "a /24 (`ip=a.b.c.0/24`)", Params: func(r *rand.Rand) QueryParams {
			a, ip := v4Home(r)
			return QueryParams{Tenant: g.TenantOf(a), CIDR: netip.PrefixFrom(ip, 24).Masked()}
		}},
		{Name: "action prefix (`action=auth.*`)", Params: func(r *rand.Rand) QueryParams {
			return QueryParams{Tenant: TenantName(r.IntN(g.Tenants)), Action: "auth.*"}
		}},
		{Name: "rare exact action (`action=user.role.changed`)", Params: func(r *rand.Rand) QueryParams {
			return QueryParams{Tenant: TenantName(r.IntN(g.Tenants)), Action: "user.role.changed"}
		}},
	}
}

// aggCase is the aggregation "distinct failed accounts per IP over 24 h".
func aggCase(g *Gen) QueryCase {
	return QueryCase{Name: "distinct failed accounts per IP, 24 h, top 20", Params: func(r *rand.Rand) QueryParams {
		return QueryParams{Tenant: TenantName(r.IntN(g.Tenants)), Agg: true, Until: g.End}
	}}
}

// QueryResult is the latency distribution of one case on one system.
type QueryResult struct {
	// Lat is the time until the answer was complete: for Vigil until the
	// JSON document was decoded, for PostgreSQL until the last row.
	Lat []time.Duration
	// Done is, for Vigil, the time until the HTTP exchange ended, which
	// includes the durable "vigil.search" read-audit event the server
	// appends after flushing the answer.
	Done []time.Duration
	Rows int // total rows returned, for a sanity comparison
	Err  error
}

// Answer is one search's outcome: rows, and (for HTTP) when the answer was
// complete, which may be before the exchange ended.
type Answer struct {
	Rows     int
	Complete time.Duration // 0: the whole call
}

// vigilSearch runs one GET /v1/events search and returns how many events
// it gave and when the JSON answer was complete.
func vigilSearch(ctx context.Context, s *Server, p QueryParams) (Answer, error) {
	q := url.Values{"tenant": {p.Tenant}, "limit": {"100"}}
	switch {
	case p.Actor != "":
		q.Set("actor", p.Actor)
	case p.IP.IsValid():
		q.Set("ip", p.IP.String())
	case p.CIDR.IsValid():
		q.Set("ip", p.CIDR.String())
	case p.Action != "":
		q.Set("action", p.Action)
	}
	var page struct {
		Events []json.RawMessage `json:"events"`
	}
	d, err := s.decode(ctx, "GET", "/v1/events?"+q.Encode(), nil, &page)
	return Answer{Rows: len(page.Events), Complete: d}, err
}

// vigilAggQuery is the query-language form of the aggregation, for POST
// /v1/query when the server has it.
func vigilAggQuery(p QueryParams) string {
	return fmt.Sprintf("action:auth.login.failure time:>=%s time:<%s | stats dc(actor.id) as accounts by ip | sort -accounts | head 20",
		p.Until.Add(-24*time.Hour).UTC().Format(time.RFC3339), p.Until.UTC().Format(time.RFC3339))
}

// vigilAgg runs the aggregation through POST /v1/query.
func vigilAgg(ctx context.Context, s *Server, p QueryParams) (Answer, error) {
	body, _ := json.Marshal(map[string]string{"q": vigilAggQuery(p), "tenant": p.Tenant})
	var out struct {
		Rows []json.RawMessage `json:"rows"`
	}
	d, err := s.decode(ctx, "POST", "/v1/query", body, &out)
	return Answer{Rows: len(out.Rows), Complete: d}, err
}

// hasQueryEndpoint reports whether the server routes POST /v1/query.
func hasQueryEndpoint(ctx context.Context, s *Server) bool {
	r, err := s.do(ctx, "POST", "/v1/query", "application/json", []byte(`{}`))
	if err != nil {
		return false
	}
	return r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed
}

// runQueries runs n draws of a case sequentially (one client), after a
// few warm-up runs, and records each latency.
func runQueries(ctx context.Context, c QueryCase, n int, seed uint64, run func(QueryParams) (Answer, error)) QueryResult {
	r := rand.New(rand.NewPCG(seed, 0xbe7c))
	var res QueryResult
	for range 5 {
		if _, err := run(c.Params(r)); err != nil {
			res.Err = err
			return res
		}
	}
	r = rand.New(rand.NewPCG(seed, 0xbe7c)) // both systems see the same draws
	for range n {
		if ctx.Err() != nil {
			res.Err = ctx.Err()
			return res
		}
		p := c.Params(r)
		t0 := time.Now()
		a, err := run(p)
		done := time.Since(t0)
		if err != nil {
			res.Err = err
			return res
		}
		complete := done
		if a.Complete > 0 {
			complete = a.Complete
		}
		res.Lat = append(res.Lat, complete)
		res.Done = append(res.Done, done)
		res.Rows += a.Rows
	}
	return res
}
