package app_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// backdated sends n login failures of tenant dated daysAgo days back.
func backdated(t *testing.T, c *client.Client, tenant string, daysAgo, n int) {
	t.Helper()
	at := time.Now().UTC().AddDate(0, 0, -daysAgo)
	evs := make([]client.Event, n)
	for i := range evs {
		evs[i] = client.Event{ID: fmt.Sprintf("%s-%dd-%d", tenant, daysAgo, i), Tenant: tenant, Action: "auth.login.failure",
			Time: at.Add(time.Duration(i) * time.Minute), Actor: client.Actor{ID: fmt.Sprintf("user%d@%s.example", i, tenant)},
			Reason: "invalid_password", Context: client.Context{IP: "192.0.2.7"}}
	}
	res, err := c.Send(t.Context(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != n {
		t.Fatalf("%d of %d backdated events accepted: %+v", res.Accepted, n, res)
	}
}

func countFailures(t *testing.T, c *client.Client, tenant string) int {
	t.Helper()
	n := 0
	for _, err := range c.ForTenant(tenant).Events(t.Context(), client.SearchParams{Action: "auth.login.failure"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestRetentionRunsOverHTTP: a tenant with 30 days of retention loses its
// 100-day-old events, findings and incidents (and keeps last week's), a
// tenant with the default keeps everything, a dry run deletes nothing, the
// purge is recorded in the tenant's own log, and a tenant admin key may
// run it and set its own retention only within the installation's bounds.
func TestRetentionRunsOverHTTP(t *testing.T) { testRetentionRunsOverHTTP(t) }

// TestRetentionRunsOverHTTPPostgres is TestRetentionRunsOverHTTP on the PostgreSQL store.
func TestRetentionRunsOverHTTPPostgres(t *testing.T) { testRetentionRunsOverHTTP(t, onPostgres(t)) }

func testRetentionRunsOverHTTP(t *testing.T, edit ...func(*config.Config)) {
	// Detection is off so that the only findings are the ones planted below.
	n := startNode(t, append(edit, func(c *config.Config) { c.Retention.Interval, c.Detect.Enabled = 0, false })...)
	ctx := t.Context()
	for _, r := range []client.CreateTenantRequest{
		{ID: "short", RetentionDays: 30, MaxEventAgeDays: 200},
		{ID: "long", MaxEventAgeDays: 200},
	} {
		if _, err := n.op.CreateTenant(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"short", "long"} {
		backdated(t, n.op, tenant, 100, 5)
		backdated(t, n.op, tenant, 7, 3)
	}
	waitForEvents(t, n.op.ForTenant("short"), client.SearchParams{Action: "auth.login.failure"}, 8)
	waitForEvents(t, n.op.ForTenant("long"), client.SearchParams{Action: "auth.login.failure"}, 8)
	old, recent := time.Now().UTC().AddDate(0, 0, -100), time.Now().UTC().AddDate(0, 0, -7)
	st := n.app.Stores()
	for _, tenant := range []string{"short", "long"} {
		var fs []audit.Finding
		for i, at := range []time.Time{old, recent} {
			fs = append(fs, audit.Finding{ID: fmt.Sprintf("f%d", i), Tenant: tenant, RuleID: "brute-force", Severity: audit.SeverityHigh,
				Status: audit.StatusOpen, GroupKey: "g", ActorID: "user0", Explanation: "x", Evidence: []string{"e"}, Count: 1,
				FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at, IncidentID: fmt.Sprintf("i%d", i)})
		}
		if err := st.Findings.UpsertFindings(ctx, fs); err != nil {
			t.Fatal(err)
		}
		if err := st.Incidents.UpsertIncidents(ctx, []audit.Incident{
			{ID: "i0", Tenant: tenant, Status: audit.StatusOpen, Severity: audit.SeverityHigh, Family: "brute-force", Findings: []string{"f0"}, FindingCount: 1, FirstSeen: old, LastSeen: old},
			{ID: "i1", Tenant: tenant, Status: audit.StatusOpen, Severity: audit.SeverityHigh, Family: "brute-force", Findings: []string{"f1"}, FindingCount: 1, FirstSeen: recent, LastSeen: recent},
		}); err != nil {
			t.Fatal(err)
		}
	}

	// A dry run over every tenant counts and deletes nothing.
	reports, err := n.op.RunRetention(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	byTenant := map[string]client.PurgeReport{}
	for _, r := range reports {
		byTenant[r.Tenant] = r
	}
	if r := byTenant["short"]; !r.DryRun || r.Events != 5 || r.Findings != 1 || r.Incidents != 1 || r.RetentionDays != 30 {
		t.Fatalf("dry run for short: %+v", r)
	}
	if r := byTenant["long"]; r.Events != 0 || r.Findings != 0 || r.Incidents != 0 {
		t.Fatalf("dry run for long (400 days): %+v", r)
	}
	if got := countFailures(t, n.op, "short"); got != 8 {
		t.Fatalf("the dry run deleted: %d events left of 8", got)
	}

	// A tenant admin key runs it for its own tenant, not another's.
	short, _ := n.tenantClient(t, "short")
	if _, err := short.RunRetention(ctx, "long", false); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a tenant key ran retention for another tenant: %v", err)
	}
	reports, err = short.RunRetention(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || reports[0].Tenant != "short" || reports[0].Events != 5 || reports[0].Findings != 1 || reports[0].Incidents != 1 || reports[0].Error != "" {
		t.Fatalf("purge of short: %+v", reports)
	}
	if got := countFailures(t, n.op, "short"); got != 3 {
		t.Fatalf("short has %d events after the purge, want last week's 3", got)
	}
	if got := countFailures(t, n.op, "long"); got != 8 {
		t.Fatalf("long lost events to another tenant's purge: %d of 8", got)
	}
	if _, err := n.op.ForTenant("short").GetFinding(ctx, "f0"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("short's 100-day-old finding survived: %v", err)
	}
	if _, err := n.op.ForTenant("short").GetFinding(ctx, "f1"); err != nil {
		t.Fatalf("short's recent finding went: %v", err)
	}
	if _, err := n.op.ForTenant("long").GetFinding(ctx, "f0"); err != nil {
		t.Fatalf("long's old finding went: %v", err)
	}
	// The purge is in short's own log, with what went.
	recs := waitRecords(t, n.op, "short", audit.ActionRetentionPurged, 1)
	if m := recs[0].Metadata; fmt.Sprint(m["events"]) != "5" || fmt.Sprint(m["findings"]) != "1" || fmt.Sprint(m["retention_days"]) != "30" {
		t.Fatalf("purge record metadata: %v", m)
	}
	// A second run deletes and records nothing more.
	if reports, err = short.RunRetention(ctx, "", false); err != nil || reports[0].Events != 0 || reports[0].Findings != 0 {
		t.Fatalf("second run: %+v %v", reports, err)
	}

	// Retention settings: a tenant admin within [30, 400], own tenant,
	// retention only; operators anything within 1–36500.
	set := func(c *client.Client, tenant string, r client.UpdateTenantRequest) error {
		_, err := c.UpdateTenant(ctx, tenant, r)
		return err
	}
	days := func(d int) *int { return &d }
	if err := set(short, "short", client.UpdateTenantRequest{RetentionDays: days(90)}); err != nil {
		t.Fatalf("tenant admin within bounds: %v", err)
	}
	if err := set(short, "short", client.UpdateTenantRequest{RetentionDays: days(10)}); !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), "between 30 and 400") {
		t.Fatalf("tenant admin below the bound: %v", err)
	}
	if err := set(short, "short", client.UpdateTenantRequest{RetentionDays: days(5000)}); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("tenant admin above the bound: %v", err)
	}
	if err := set(short, "long", client.UpdateTenantRequest{RetentionDays: days(90)}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("tenant admin on another tenant: %v", err)
	}
	if err := set(short, "short", client.UpdateTenantRequest{RetentionDays: days(90), MaxEventAgeDays: days(3650)}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("tenant admin widening its event age: %v", err)
	}
	reader, _ := n.tenantClient(t, "short", "events:read")
	if err := set(reader, "short", client.UpdateTenantRequest{RetentionDays: days(90)}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a key without admin changed retention: %v", err)
	}
	if err := set(n.op, "short", client.UpdateTenantRequest{RetentionDays: days(5)}); err != nil {
		t.Fatalf("operator outside the tenant bounds: %v", err)
	}
	if tn, err := n.op.GetTenant(ctx, "short"); err != nil || tn.RetentionDays != 5 {
		t.Fatalf("short after the operator's change: %+v %v", tn, err)
	}
}

// TestRetentionRunsOnItsOwn: with a short retention.interval the server
// purges without being asked, and says so in its metrics.
func TestRetentionRunsOnItsOwn(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Retention.Interval = 200 * time.Millisecond })
	ctx := t.Context()
	if _, err := n.op.CreateTenant(ctx, client.CreateTenantRequest{ID: "short", RetentionDays: 30, MaxEventAgeDays: 200}); err != nil {
		t.Fatal(err)
	}
	backdated(t, n.op, "short", 60, 4)
	backdated(t, n.op, "short", 1, 2)
	// The scheduled run may purge the old events as soon as they are
	// stored, so wait for the outcome, not for the intermediate state.
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := records(t, n.op, "short", audit.ActionRetentionPurged)
		got := countFailures(t, n.op, "short")
		if got == 2 && len(recs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s of scheduled runs: %d events (want 2), %d purge records", got, len(recs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `vigil_retention_purged_total{kind="events"} 4`) {
		t.Fatalf("metrics lack the 4 purged events:\n%s", grepLines(string(b), "vigil_retention_"))
	}
	if !regexp.MustCompile(`(?m)^vigil_retention_runs_total\{result="ok"\} [1-9]`).Match(b) {
		t.Fatalf("metrics count no successful run:\n%s", grepLines(string(b), "vigil_retention_"))
	}
}

// records returns the events of action in tenant's log (Vigil's own records).
func records(t *testing.T, c *client.Client, tenant, action string) []client.Event {
	t.Helper()
	var out []client.Event
	for e, err := range c.ForTenant(tenant).Events(t.Context(), client.SearchParams{Action: action}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// waitRecords waits until tenant's log holds want records of action (the
// pipeline stores them shortly after they are durable).
func waitRecords(t *testing.T, c *client.Client, tenant, action string, want int) []client.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := records(t, c, tenant, action)
		if len(recs) >= want || time.Now().After(deadline) {
			if len(recs) != want {
				t.Fatalf("%d %s records in %s's log, want %d", len(recs), action, tenant, want)
			}
			return recs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
