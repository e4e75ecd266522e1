package pipeline_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/rules"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// node is one start of the server's pipeline on a data directory: SQLite
// store, durable stream and detection state, the built-in rule pack.
type node struct {
	db *sqlite.DB
	p  *pipeline.Pipeline
}

func startNode(t *testing.T, dir string) *node {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := detect.New(detect.Options{Rules: rules.MustBuiltin(), StateStore: db})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{Stream: db.Stream(), Events: db.Events(), Findings: db, Incidents: db,
		Detector: eng, Enricher: uaEnricher{}})
	if err != nil {
		t.Fatal(err)
	}
	return &node{db: db, p: p}
}

// feed appends chunks of the generated stream and drains each (a
// checkpoint follows every chunk).
func (n *node) feed(t *testing.T, chunks [][]*audit.Event) {
	t.Helper()
	for _, evs := range chunks {
		if _, err := n.db.Stream().Append(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
		if err := n.p.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// stored returns every stored finding and incident, as JSON by id.
func (n *node) stored(t *testing.T) (findings, incidents map[string]string) {
	t.Helper()
	findings, incidents = map[string]string{}, map[string]string{}
	for f := (audit.FindingFilter{AllTenants: true, Limit: audit.MaxPageSize}); ; {
		page, err := n.db.SearchFindings(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Findings {
			b, _ := json.Marshal(x)
			findings[x.Tenant+"/"+x.ID] = string(b)
		}
		if f.Cursor = page.Next; f.Cursor == "" {
			break
		}
	}
	for f := (audit.IncidentFilter{AllTenants: true, Limit: audit.MaxPageSize}); ; {
		page, err := n.db.SearchIncidents(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Incidents {
			b, _ := json.Marshal(x)
			incidents[x.Tenant+"/"+x.ID] = string(b)
		}
		if f.Cursor = page.Next; f.Cursor == "" {
			break
		}
	}
	return findings, incidents
}

// TestReopenedDataDirGivesTheSameFindingsAndIncidents: a pipeline stopped
// after a checkpoint and started again on the same SQLite data directory
// (detection state, incidents, stream position) stores exactly the
// findings and incidents of one that never stopped.
func TestReopenedDataDirGivesTheSameFindingsAndIncidents(t *testing.T) {
	g := newStreamGen(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), 7)
	var chunks [][]*audit.Event
	for range 7 {
		evs := make([]*audit.Event, 1500)
		for i := range evs {
			evs[i] = g.next()
		}
		chunks = append(chunks, evs)
	}

	whole := startNode(t, t.TempDir())
	t.Cleanup(func() { whole.db.Close() })
	whole.feed(t, chunks)
	wantF, wantI := whole.stored(t)
	if len(wantF) == 0 || len(wantI) == 0 {
		t.Fatalf("the stream raised %d findings and %d incidents; the test needs both", len(wantF), len(wantI))
	}

	dir := t.TempDir()
	first := startNode(t, dir)
	// The stop falls inside a stuffing wave (events 7,000-7,999), whose
	// windows, findings and incident continue after it.
	first.feed(t, chunks[:5])
	if err := first.db.Close(); err != nil {
		t.Fatal(err)
	}
	second := startNode(t, dir)
	t.Cleanup(func() { second.db.Close() })
	second.feed(t, chunks[5:])
	gotF, gotI := second.stored(t)
	if d := cmp.Diff(wantF, gotF); d != "" {
		t.Errorf("findings after a restart differ (-uninterrupted +restarted):\n%s", d)
	}
	if d := cmp.Diff(wantI, gotI); d != "" {
		t.Errorf("incidents after a restart differ (-uninterrupted +restarted):\n%s", d)
	}
	t.Logf("%d findings, %d incidents", len(gotF), len(gotI))
}
