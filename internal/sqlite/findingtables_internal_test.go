package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestMetaUpgradeMakesFindingTablesRowid: migration 0160 moves findings and
// incidents from WITHOUT ROWID tables (where a 1–2 KB document spilled to an
// overflow page of its own) to rowid tables, keeping every row, every
// column the lists filter on, the indexes, and the upsert's rules.
func TestMetaUpgradeMakesFindingTablesRowid(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var fs []audit.Finding
	var is []audit.Incident
	for i := range 40 {
		inc := fmt.Sprintf("inc-%02d", i/4)
		f := audit.Finding{ID: fmt.Sprintf("f-%02d", i), Tenant: []string{"acme", "globex"}[i%2], RuleID: "credential-stuffing",
			RuleName: "Credential stuffing", Severity: audit.SeverityHigh, Score: 70, Status: audit.StatusOpen,
			GroupKey: "ip=203.0.113.0/24", IP: fmt.Sprintf("203.0.113.%d", i), IncidentID: inc,
			Explanation: strings.Repeat("Failed logins from one network against many accounts. ", 8),
			Facts:       map[string]any{"count": float64(i), "asn": "AS64500", "country": "NL"},
			Count:       i + 1, FirstSeen: at.Add(time.Duration(i) * time.Minute), LastSeen: at.Add(time.Duration(i+5) * time.Minute)}
		for j := range 30 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("01JDEVIDENCE%08d%06d", i, j))
		}
		f.CreatedAt, f.UpdatedAt = f.FirstSeen, f.LastSeen
		fs = append(fs, f)
		if i%4 == 0 {
			is = append(is, audit.Incident{ID: inc, Tenant: f.Tenant, Status: audit.StatusOpen, Severity: audit.SeverityHigh, Score: 70,
				Headline: "Credential stuffing", HeadlineRule: "credential-stuffing", Family: "credential-stuffing",
				Summary: f.Explanation, FirstSeen: f.FirstSeen, LastSeen: f.LastSeen, Findings: []string{f.ID}, FindingCount: 1,
				Rules: []string{"credential-stuffing"}, IPs: []string{f.IP}, IPCount: 1, CreatedAt: f.FirstSeen, UpdatedAt: f.LastSeen})
		}
	}

	// The rows as the current version writes them, copied into a meta.db
	// at version 0150 (the tables' old form).
	cur, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if err := cur.UpsertFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	if err := cur.UpsertIncidents(ctx, is); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := metaAt(t, dir, 150)
	for _, tbl := range []string{"findings", "incidents"} {
		rows, err := cur.meta.r.QueryContext(ctx, `SELECT * FROM `+tbl)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			q := `INSERT INTO ` + tbl + ` (` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
			if _, err := old.Exec(q, vals...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		var ddl string
		if err := old.QueryRow(`SELECT sql FROM sqlite_master WHERE name = ?`, tbl).Scan(&ddl); err != nil || !strings.Contains(ddl, "WITHOUT ROWID") {
			t.Fatalf("%s at 0150: %q %v", tbl, ddl, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tbl := range []string{"findings", "incidents"} {
		var ddl string
		if err := db.meta.r.QueryRow(`SELECT sql FROM sqlite_master WHERE name = ?`, tbl).Scan(&ddl); err != nil || strings.Contains(ddl, "WITHOUT ROWID") {
			t.Fatalf("%s after the upgrade: %q %v", tbl, ddl, err)
		}
	}
	var idx []string
	rows, err := db.meta.r.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('findings', 'incidents') AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		idx = append(idx, n)
	}
	rows.Close()
	if want := []string{"findings_all_seen", "findings_incident", "findings_seen", "incidents_all_seen", "incidents_seen"}; !reflect.DeepEqual(idx, want) {
		t.Fatalf("indexes after the upgrade: %v, want %v", idx, want)
	}
	for _, f := range fs {
		want, err := cur.GetFinding(ctx, f.Tenant, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.GetFinding(ctx, f.Tenant, f.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("finding %s after the upgrade:\n got %+v %v\nwant %+v", f.ID, got, err, want)
		}
	}
	for _, in := range is {
		want, _ := cur.GetIncident(ctx, in.Tenant, in.ID)
		got, err := db.GetIncident(ctx, in.Tenant, in.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("incident %s after the upgrade:\n got %+v %v\nwant %+v", in.ID, got, err, want)
		}
	}
	for _, tenant := range []string{"acme", "globex"} {
		page, err := db.SearchFindings(ctx, audit.FindingFilter{Tenant: tenant, Limit: 100})
		if err != nil || len(page.Findings) != 20 {
			t.Fatalf("%s's findings after the upgrade: %d %v", tenant, len(page.Findings), err)
		}
		for i := 1; i < len(page.Findings); i++ {
			if page.Findings[i].LastSeen.After(page.Findings[i-1].LastSeen) {
				t.Fatalf("%s's findings out of order after the upgrade", tenant)
			}
		}
	}

	// The upsert's rules hold on the new table: a triaged finding keeps its
	// status and note, and created_at, when detection updates it.
	if _, err := db.UpdateFinding(ctx, "acme", "f-00", audit.FindingUpdate{Status: audit.StatusResolved, Note: "known pentest"}); err != nil {
		t.Fatal(err)
	}
	upd := fs[0]
	upd.Count, upd.LastSeen, upd.CreatedAt = 99, upd.LastSeen.Add(time.Hour), at.Add(48*time.Hour)
	if err := db.UpsertFindings(ctx, []audit.Finding{upd}); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetFinding(ctx, "acme", "f-00")
	if err != nil || got.Count != 99 || got.Status != audit.StatusResolved || got.Note != "known pentest" || !got.CreatedAt.Equal(fs[0].CreatedAt) {
		t.Fatalf("finding updated after the upgrade: %+v %v", got, err)
	}
	var n int
	if err := db.meta.r.QueryRow(`SELECT count(*) FROM findings`).Scan(&n); err != nil || n != len(fs) {
		t.Fatalf("%d findings stored, want %d: %v", n, len(fs), err)
	}
}

// metaAt creates dir/meta.db with the meta migrations up to version and
// returns it open.
func metaAt(t testing.TB, dir string, version int) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "meta.db")+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations("meta")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version > version {
			break
		}
		if err := applyMigration(context.Background(), raw, m, goSteps["meta"][m.version]); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	return raw
}
