package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

var findingsBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openFindings opens a store on a fresh schema and a plain connection to
// that schema, for looking at the tables behind the store's back.
func openFindings(t *testing.T) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	url, schema := pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return s, conn
}

func testFinding(tenant, id string, lastSeen time.Time) audit.Finding {
	return audit.Finding{
		ID: id, Tenant: tenant, RuleID: "stuffing", Severity: audit.SeverityMedium, Score: 50,
		Status: audit.StatusOpen, GroupKey: "ip=203.0.113.7", ActorID: "alice", IP: "203.0.113.7",
		Explanation: "failed logins", Evidence: []string{"e1"}, Count: 1,
		FirstSeen: lastSeen.Add(-time.Minute), LastSeen: lastSeen, CreatedAt: lastSeen, UpdatedAt: lastSeen,
	}
}

// alertChangeLog lists the recorded alert changes as "kind/id change severity".
func alertChangeLog(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT kind || '/' || entity_id || ' ' || change || ' ' || severity FROM alert_changes ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFindingAlertChanges(t *testing.T) {
	s, conn := openFindings(t)
	ctx := t.Context()
	f := testFinding("a", "f1", findingsBase)
	mustF(t, s.UpsertFindings(ctx, []audit.Finding{f}))
	mustF(t, s.UpsertFindings(ctx, []audit.Finding{f})) // a replay alerts nothing
	f.Severity = audit.SeverityHigh
	mustF(t, s.UpsertFindings(ctx, []audit.Finding{f}))
	f.Severity = audit.SeverityLow // falling back is no change
	mustF(t, s.UpsertFindings(ctx, []audit.Finding{f}))
	_, err := s.UpdateFinding(ctx, "a", "f1", audit.FindingUpdate{Status: audit.StatusAcknowledged})
	mustF(t, err)
	_, err = s.UpdateFinding(ctx, "a", "f1", audit.FindingUpdate{Status: audit.StatusAcknowledged, Note: "same status"})
	mustF(t, err)
	mustF(t, s.RewriteFindings(ctx, []audit.Finding{f}))
	inc := audit.Incident{ID: "i1", Tenant: "a", Severity: audit.SeverityHigh, HeadlineRule: "stuffing", Family: "stuffing", LastSeen: findingsBase}
	mustF(t, s.UpsertIncidents(ctx, []audit.Incident{inc, inc}))
	_, err = s.UpdateIncident(ctx, "a", "i1", audit.IncidentUpdate{Status: audit.StatusResolved})
	mustF(t, err)
	want := []string{"finding/f1 opened 2", "finding/f1 escalated 3", "finding/f1 acknowledged 1",
		"incident/i1 opened 3", "incident/i1 resolved 3"}
	if got := alertChangeLog(t, conn); !slices.Equal(got, want) {
		t.Fatalf("changes:\n got %q\nwant %q", got, want)
	}
	// The purge takes the marks: the same finding stored again is new.
	nf, ni, err := s.PurgeFindings(ctx, "a", findingsBase.Add(time.Hour), false)
	mustF(t, err)
	if nf != 1 || ni != 1 {
		t.Fatalf("purged %d findings, %d incidents", nf, ni)
	}
	var marks int
	mustF(t, conn.QueryRow(ctx, `SELECT count(*) FROM alert_marks`).Scan(&marks))
	if marks != 0 {
		t.Fatalf("%d alert marks left after the purge", marks)
	}
	mustF(t, s.UpsertFindings(ctx, []audit.Finding{f}))
	if got := alertChangeLog(t, conn); got[len(got)-1] != "finding/f1 opened 1" {
		t.Fatalf("after purge and upsert: %q", got)
	}
}

// A batch of thousands is one transaction; a finding given twice in it
// takes the first version's creation time, and the later version wins.
func TestUpsertFindingsLargeBatch(t *testing.T) {
	s, conn := openFindings(t)
	ctx := t.Context()
	const n = 3000
	fs := make([]audit.Finding, 0, n+1)
	for i := range n {
		fs = append(fs, testFinding("a", fmt.Sprintf("f%05d", i), findingsBase.Add(time.Duration(i)*time.Second)))
	}
	again := testFinding("a", "f00007", findingsBase.Add(time.Hour))
	again.Count, again.CreatedAt = 99, findingsBase.Add(time.Hour)
	fs = append(fs, again)
	start := time.Now()
	mustF(t, s.UpsertFindings(ctx, fs))
	t.Logf("upserted %d findings in %v", len(fs), time.Since(start))
	got, err := s.GetFinding(ctx, "a", "f00007")
	mustF(t, err)
	if got.Count != 99 || !got.CreatedAt.Equal(fs[7].CreatedAt) {
		t.Fatalf("duplicate in batch: count %d created %v", got.Count, got.CreatedAt)
	}
	var rows int
	mustF(t, conn.QueryRow(ctx, `SELECT count(*) FROM findings`).Scan(&rows))
	if rows != n {
		t.Fatalf("%d rows, want %d", rows, n)
	}
	if c := alertChangeLog(t, conn); len(c) != n {
		t.Fatalf("%d changes, want %d (one opened each)", len(c), n)
	}
	// The whole batch again: one statement's worth of replays, no change.
	start = time.Now()
	mustF(t, s.UpsertFindings(ctx, fs))
	t.Logf("replayed %d findings in %v", len(fs), time.Since(start))
	if c := alertChangeLog(t, conn); len(c) != n {
		t.Fatalf("%d changes after a replay, want %d", len(c), n)
	}
}

// JSON can carry NUL characters and big integers; documents keep them,
// also through a merge that moves findings and a cascading triage.
func TestFindingDocumentsKeepWhatJSONCarries(t *testing.T) {
	s, conn := openFindings(t)
	ctx := t.Context()
	var fs []audit.Finding
	for i := range 1200 { // more than one chunk of the move and the cascade
		f := testFinding("a", fmt.Sprintf("f%04d", i), findingsBase)
		f.IncidentID = "i2"
		fs = append(fs, f)
	}
	fs[0].Explanation = "user\x00name"
	fs[0].Facts = map[string]any{"big": json.Number("9007199254740993")}
	mustF(t, s.UpsertFindings(ctx, fs))
	i1 := audit.Incident{ID: "i1", Tenant: "a", Severity: audit.SeverityHigh, Summary: "a\x00b", LastSeen: findingsBase}
	i2 := audit.Incident{ID: "i2", Tenant: "a", Severity: audit.SeverityHigh, LastSeen: findingsBase}
	mustF(t, s.UpsertIncidents(ctx, []audit.Incident{i1, i2}))
	i2.MergedInto = "i1"
	mustF(t, s.UpsertIncidents(ctx, []audit.Incident{i2}))
	_, err := s.UpdateFinding(ctx, "a", "f0001", audit.FindingUpdate{Status: audit.StatusAcknowledged, Note: "mine"})
	mustF(t, err)
	at := findingsBase.Add(time.Hour)
	_, err = s.UpdateIncident(ctx, "a", "i2", audit.IncidentUpdate{Status: audit.StatusResolved, Note: "done", Cascade: true, At: at})
	mustF(t, err)

	got, err := s.GetFinding(ctx, "a", "f0000")
	mustF(t, err)
	var doc []byte
	mustF(t, conn.QueryRow(ctx, `SELECT doc FROM findings WHERE tenant = 'a' AND id = 'f0000'`).Scan(&doc))
	if got.Explanation != "user\x00name" || !strings.Contains(string(doc), `"big":9007199254740993`) {
		t.Fatalf("document changed: %q %s", got.Explanation, doc)
	}
	if got.IncidentID != "i1" || got.Status != audit.StatusResolved || got.Note != "done" || !got.UpdatedAt.Equal(at) {
		t.Fatalf("moved and cascaded finding: %+v", got)
	}
	page, err := s.SearchFindings(ctx, audit.FindingFilter{Tenant: "a", IncidentID: "i1", Status: audit.StatusResolved, Limit: audit.MaxPageSize})
	mustF(t, err)
	if len(page.Findings) != audit.MaxPageSize || page.Next == "" {
		t.Fatalf("first page of resolved findings of i1: %d, next %q", len(page.Findings), page.Next)
	}
	page, err = s.SearchFindings(ctx, audit.FindingFilter{Tenant: "a", IncidentID: "i1", Status: audit.StatusResolved, Limit: audit.MaxPageSize, Cursor: page.Next})
	mustF(t, err)
	if len(page.Findings) != 1199-audit.MaxPageSize || page.Next != "" {
		t.Fatalf("second page: %d, next %q", len(page.Findings), page.Next)
	}
	mine, err := s.GetFinding(ctx, "a", "f0001")
	mustF(t, err)
	if mine.Status != audit.StatusAcknowledged || mine.Note != "mine" {
		t.Fatalf("the cascade changed a triaged finding: %s %q", mine.Status, mine.Note)
	}
	inc, err := s.GetIncident(ctx, "a", "i1")
	mustF(t, err)
	if inc.Summary != "a\x00b" || inc.Status != audit.StatusResolved {
		t.Fatalf("incident: %q %s", inc.Summary, inc.Status)
	}
}

// Ids sort bytewise, as in SQLite, whatever the database's collation.
func TestFindingOrderIsBytewise(t *testing.T) {
	s, _ := openFindings(t)
	ctx := t.Context()
	var fs []audit.Finding
	for _, id := range []string{"a", "B", "_", "é", "Z"} {
		fs = append(fs, testFinding("a", id, findingsBase))
	}
	mustF(t, s.UpsertFindings(ctx, fs))
	var got []string
	f := audit.FindingFilter{Tenant: "a", Limit: 2}
	for {
		page, err := s.SearchFindings(ctx, f)
		mustF(t, err)
		for _, x := range page.Findings {
			got = append(got, x.ID)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	if want := []string{"é", "a", "_", "Z", "B"}; !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// The pipeline's batches and a person's triage touch the same rows in
// different orders: deadlocks are retried, no write fails, and triage
// survives.
func TestConcurrentBatchesAndTriage(t *testing.T) {
	s, _ := openFindings(t)
	ctx := t.Context()
	var fs []audit.Finding
	for i := range 200 {
		fs = append(fs, testFinding("a", fmt.Sprintf("f%03d", i), findingsBase))
	}
	mustF(t, s.UpsertFindings(ctx, fs))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 5 {
				batch := slices.Clone(fs)
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				if err := s.UpsertFindings(ctx, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for i := 199; i >= 0; i -= 7 {
			if _, err := s.UpdateFinding(ctx, "a", fs[i].ID, audit.FindingUpdate{Status: audit.StatusResolved, Note: "ok"}); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := 199; i >= 0; i -= 7 {
		got, err := s.GetFinding(ctx, "a", fs[i].ID)
		mustF(t, err)
		if got.Status != audit.StatusResolved || got.Note != "ok" {
			t.Fatalf("%s lost its triage: %s %q", got.ID, got.Status, got.Note)
		}
	}
}

func mustF(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A purge larger than one chunk deletes everything before the cutoff,
// counts it all, and leaves the rest.
func TestPurgeFindingsInChunks(t *testing.T) {
	s, conn := openFindings(t)
	ctx := t.Context()
	const n = 5001
	fs := make([]audit.Finding, 0, n+1)
	for i := range n {
		fs = append(fs, testFinding("a", fmt.Sprintf("f%05d", i), findingsBase))
	}
	fs = append(fs, testFinding("a", "recent", findingsBase.Add(48*time.Hour)), testFinding("b", "f00000", findingsBase))
	mustF(t, s.UpsertFindings(ctx, fs))
	cut := findingsBase.Add(24 * time.Hour)
	nf, _, err := s.PurgeFindings(ctx, "a", cut, true)
	mustF(t, err)
	if nf != n {
		t.Fatalf("dry run counted %d, want %d", nf, n)
	}
	nf, _, err = s.PurgeFindings(ctx, "a", cut, false)
	mustF(t, err)
	if nf != n {
		t.Fatalf("purged %d, want %d", nf, n)
	}
	var rows, marks int
	mustF(t, conn.QueryRow(ctx, `SELECT count(*) FROM findings`).Scan(&rows))
	mustF(t, conn.QueryRow(ctx, `SELECT count(*) FROM alert_marks`).Scan(&marks))
	if rows != 2 || marks != 2 {
		t.Fatalf("left %d findings and %d marks, want 2 and 2", rows, marks)
	}
	if nf, ni, err := s.PurgeFindings(ctx, "a", cut, false); err != nil || nf != 0 || ni != 0 {
		t.Fatalf("second purge: %d, %d, %v", nf, ni, err)
	}
}

// Detection's batches of findings and incidents and a person's cascading
// triage of the same incident run together without a failed write.
func TestConcurrentIncidentTriage(t *testing.T) {
	s, _ := openFindings(t)
	ctx := t.Context()
	var fs []audit.Finding
	for i := range 300 {
		f := testFinding("a", fmt.Sprintf("f%03d", i), findingsBase)
		f.IncidentID = "i1"
		fs = append(fs, f)
	}
	inc := audit.Incident{ID: "i1", Tenant: "a", Severity: audit.SeverityHigh, LastSeen: findingsBase}
	other := audit.Incident{ID: "i0", Tenant: "a", Severity: audit.SeverityHigh, LastSeen: findingsBase}
	mustF(t, s.UpsertFindings(ctx, fs))
	mustF(t, s.UpsertIncidents(ctx, []audit.Incident{other, inc}))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 3 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for j := range 5 {
				batch := slices.Clone(fs)
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				for k := range batch {
					batch[k].Severity = []audit.Severity{audit.SeverityMedium, audit.SeverityHigh, audit.SeverityCritical}[(j+k)%3]
				}
				if err := s.UpsertFindings(ctx, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for j := range 10 {
			i := inc
			i.Severity = []audit.Severity{audit.SeverityHigh, audit.SeverityCritical}[j%2]
			if err := s.UpsertIncidents(ctx, []audit.Incident{i, other}); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		for j := range 10 {
			st := []audit.FindingStatus{audit.StatusAcknowledged, audit.StatusOpen}[j%2]
			if _, err := s.UpdateIncident(ctx, "a", "i1", audit.IncidentUpdate{Status: st, Cascade: true}); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
