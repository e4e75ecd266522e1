package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// asnTable is an enricher that knows the network of one /16, as an ASN
// database would.
type asnTable struct{}

func (asnTable) Name() string { return "asn-table" }
func (asnTable) Enrich(_ context.Context, e *audit.Event) error {
	if netip.MustParsePrefix("198.51.0.0/16").Contains(e.Context.IP) {
		e.Enrichment.Network = &audit.Network{ASN: 64500}
	}
	return nil
}

// TestFindingsKeyedOnSubnetOrASNAreVisibleFromAnAddress: findings keyed on
// a /24 (credential-stuffing-subnet) or on an autonomous system are listed
// by GET /v1/findings?ip=A and shown in GET /v1/ips/{A} for an address A
// inside them, and never to another tenant. Before, both answered only the
// findings opened on A itself.
func TestFindingsKeyedOnSubnetOrASNAreVisibleFromAnAddress(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := memstream.New(memstream.Options{})
	svc, err := ingest.New(ingest.Options{Stream: st, TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Options{Ingest: svc, Events: db.Events(), Stream: st, Tenants: db, Keys: db, Findings: db, Rules: db,
		Query: query.NewRunner(db.Events(), query.Options{}), Enricher: asnTable{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	now := time.Now().UTC()
	at := now.Add(-time.Hour).Truncate(time.Second)
	keys := map[string]string{}
	for _, tn := range []string{"tenant-a", "tenant-b"} {
		if err := db.CreateTenant(ctx, audit.Tenant{ID: tn, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, keys[tn], err = audit.MintKey(ctx, db, tn, "k", []audit.Scope{audit.ScopeAdmin}, now); err != nil {
			t.Fatal(err)
		}
	}
	keyed := func(tenant, id, rule, groupKey string) audit.Finding {
		return audit.Finding{ID: id, Tenant: tenant, RuleID: rule, Severity: audit.SeverityHigh, Status: audit.StatusOpen, GroupKey: groupKey,
			Evidence: []string{"e-1"}, Count: 1, FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at}
	}
	if err := db.UpsertFindings(ctx, []audit.Finding{
		keyed("tenant-a", "f-subnet", "credential-stuffing-subnet", "ip24=198.51.100.0/24"),
		keyed("tenant-a", "f-asn", "credential-stuffing-asn", "asn=AS64500"),
		keyed("tenant-a", "f-neighbour", "credential-stuffing-subnet", "ip24=198.51.101.0/24"),
		keyed("tenant-a", "f-other-as", "credential-stuffing-asn", "asn=AS64501"),
		keyed("tenant-b", "f-b-subnet", "credential-stuffing-subnet", "ip24=198.51.100.0/24"),
	}); err != nil {
		t.Fatal(err)
	}
	// One event from the address, enriched as the pipeline would.
	ev := audit.Event{ID: "e-1", Tenant: "tenant-a", Time: at, ReceivedAt: at, Action: audit.ActionLoginFailure, Outcome: audit.OutcomeFailure,
		Actor: audit.Actor{ID: "alice"}, Context: audit.Context{IP: netip.MustParseAddr("198.51.100.7")},
		Enrichment: audit.Enrichment{Network: &audit.Network{ASN: 64500}}}
	if err := db.Events().InsertEvents(ctx, []audit.Event{ev}); err != nil {
		t.Fatal(err)
	}
	ids := func(path, key string) []string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Findings []audit.Finding `json:"findings"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		var out []string
		for _, f := range body.Findings {
			out = append(out, f.ID)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		path, tenant string
		want         []string
	}{
		{"/v1/findings?ip=198.51.100.7", "tenant-a", []string{"f-asn", "f-subnet"}},
		{"/v1/ips/198.51.100.7", "tenant-a", []string{"f-asn", "f-subnet"}},
		// No event from this one: its network comes from enriching it now.
		{"/v1/ips/198.51.100.200", "tenant-a", []string{"f-asn", "f-subnet"}},
		{"/v1/findings?ip=198.51.101.1", "tenant-a", []string{"f-asn", "f-neighbour"}},
		{"/v1/findings?ip=203.0.113.9", "tenant-a", nil},
		{"/v1/findings?ip=198.51.100.7", "tenant-b", []string{"f-b-subnet"}},
		{"/v1/ips/198.51.100.7", "tenant-b", []string{"f-b-subnet"}},
	} {
		if got := ids(c.path, keys[c.tenant]); !slices.Equal(got, c.want) {
			t.Errorf("GET %s as %s: %v, want %v", c.path, c.tenant, got, c.want)
		}
	}
}
