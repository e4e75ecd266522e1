package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func incident(tenant, id string, lastSeen time.Time, findings ...string) audit.Incident {
	return audit.Incident{
		ID: id, Tenant: tenant, Status: audit.StatusOpen, Severity: audit.SeverityHigh, Score: 80,
		Headline: "Credential stuffing", HeadlineRule: "credential-stuffing", Family: "credential-stuffing",
		FirstSeen: lastSeen.Add(-time.Minute), LastSeen: lastSeen, Findings: findings, FindingCount: len(findings),
		Rules: []string{"credential-stuffing"}, IPs: []string{"203.0.113.7"}, IPCount: 1,
		Timeline: []audit.TimelineEntry{}, Evidence: []string{"e1"}, CreatedAt: lastSeen, UpdatedAt: lastSeen,
	}
}

func runIncidents(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s, fs := b.Incidents, b.Findings
	if s == nil || fs == nil {
		t.Skip("backend has no incident store")
	}
	ctx := t.Context()

	t.Run("UpsertKeepsTriageAndCascades", func(t *testing.T) {
		f1, f2 := finding("a", "if1", baseTime), finding("a", "if2", baseTime)
		f1.IncidentID, f2.IncidentID = "i1", "i1"
		noErr(t, fs.UpsertFindings(ctx, []audit.Finding{f1, f2}))
		inc := incident("a", "i1", baseTime, "if1", "if2")
		noErr(t, s.UpsertIncidents(ctx, []audit.Incident{inc}))
		got, err := s.GetIncident(ctx, "a", "i1")
		noErr(t, err)
		sameJSON(t, "incident", *got, inc)
		_, err = s.UpdateIncident(ctx, "a", "i1", audit.IncidentUpdate{Status: "bogus"})
		wantCode(t, err, audit.EINVALID)
		// One finding was already triaged on its own: the cascade leaves it.
		_, err = fs.UpdateFinding(ctx, "a", "if2", audit.FindingUpdate{Status: audit.StatusAcknowledged, Note: "mine"})
		noErr(t, err)
		upd, err := s.UpdateIncident(ctx, "a", "i1", audit.IncidentUpdate{Status: audit.StatusResolved, Note: "pen test", Cascade: true, At: baseTime.Add(time.Hour)})
		noErr(t, err)
		if upd.Status != audit.StatusResolved || upd.Note != "pen test" {
			t.Fatalf("UpdateIncident returned %+v", upd)
		}
		g1, _ := fs.GetFinding(ctx, "a", "if1")
		g2, _ := fs.GetFinding(ctx, "a", "if2")
		if g1.Status != audit.StatusResolved || g1.Note != "pen test" || g2.Status != audit.StatusAcknowledged || g2.Note != "mine" {
			t.Fatalf("cascade: if1 %s %q, if2 %s %q", g1.Status, g1.Note, g2.Status, g2.Note)
		}
		page, err := fs.SearchFindings(ctx, audit.FindingFilter{Tenant: "a", IncidentID: "i1"})
		noErr(t, err)
		if len(page.Findings) != 2 {
			t.Fatalf("findings of i1: %d, want 2", len(page.Findings))
		}
		later := incident("a", "i1", baseTime.Add(2*time.Hour), "if1", "if2", "if3")
		noErr(t, s.UpsertIncidents(ctx, []audit.Incident{later}))
		got, err = s.GetIncident(ctx, "a", "i1")
		noErr(t, err)
		if got.Status != audit.StatusResolved || got.Note != "pen test" || got.FindingCount != 3 || !got.CreatedAt.Equal(baseTime) {
			t.Fatalf("upsert after triage: %s %q %d %v", got.Status, got.Note, got.FindingCount, got.CreatedAt)
		}
	})

	t.Run("MergeMovesFindings", func(t *testing.T) {
		f := finding("a", "mf1", baseTime)
		f.IncidentID = "m2"
		noErr(t, fs.UpsertFindings(ctx, []audit.Finding{f}))
		noErr(t, s.UpsertIncidents(ctx, []audit.Incident{incident("a", "m1", baseTime), incident("a", "m2", baseTime, "mf1")}))
		m2 := incident("a", "m2", baseTime, "mf1")
		m2.MergedInto = "m1"
		noErr(t, s.UpsertIncidents(ctx, []audit.Incident{m2}))
		got, err := fs.GetFinding(ctx, "a", "mf1")
		noErr(t, err)
		if got.IncidentID != "m1" {
			t.Fatalf("finding of the merged incident names %q, want m1", got.IncidentID)
		}
		inc, err := s.GetIncident(ctx, "a", "m2")
		noErr(t, err)
		if inc.ID != "m1" {
			t.Fatalf("a merged id resolves to %s, want m1", inc.ID)
		}
		page, err := s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "a", Limit: 100})
		noErr(t, err)
		for _, i := range page.Incidents {
			if i.ID == "m2" {
				t.Fatal("a merged incident is listed")
			}
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		noErr(t, s.UpsertIncidents(ctx, []audit.Incident{incident("b", "ib", baseTime)}))
		_, err := s.GetIncident(ctx, "a", "ib")
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.UpdateIncident(ctx, "a", "ib", audit.IncidentUpdate{Status: audit.StatusResolved})
		wantCode(t, err, audit.ENOTFOUND)
		got, err := s.GetIncident(ctx, "b", "ib")
		noErr(t, err)
		if got.Status != audit.StatusOpen {
			t.Fatal("another tenant changed the incident")
		}
		page, err := s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "a", Limit: 100})
		noErr(t, err)
		for _, i := range page.Incidents {
			if i.Tenant != "a" {
				t.Fatal("search leaked another tenant's incident")
			}
		}
		_, err = s.SearchIncidents(ctx, audit.IncidentFilter{})
		wantCode(t, err, audit.EINVALID)
		_, err = s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "a", Cursor: "!!"})
		wantCode(t, err, audit.EINVALID)
	})

	t.Run("SearchFiltersAndPaging", func(t *testing.T) {
		var is []audit.Incident
		for i := range 25 {
			inc := incident("p", fmt.Sprintf("p%02d", i), baseTime.Add(time.Duration(i)*time.Minute))
			if i%5 == 0 {
				inc.Severity, inc.Family = audit.SeverityLow, "new-location"
			}
			is = append(is, inc)
		}
		noErr(t, s.UpsertIncidents(ctx, is))
		var ids []string
		cur := ""
		for {
			page, err := s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "p", Limit: 7, Cursor: cur})
			noErr(t, err)
			for _, i := range page.Incidents {
				ids = append(ids, i.ID)
			}
			if page.Next == "" {
				break
			}
			cur = page.Next
		}
		if len(ids) != 25 || ids[0] != "p24" || ids[24] != "p00" {
			t.Fatalf("paged %d incidents from %v to %v", len(ids), ids[0], ids[len(ids)-1])
		}
		page, err := s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "p", Severity: audit.SeverityMedium, Limit: 100})
		noErr(t, err)
		if len(page.Incidents) != 20 {
			t.Fatalf("severity filter: %d, want 20", len(page.Incidents))
		}
		page, err = s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "p", Family: "new-location", Limit: 100})
		noErr(t, err)
		if len(page.Incidents) != 5 {
			t.Fatalf("family filter: %d, want 5", len(page.Incidents))
		}
		page, err = s.SearchIncidents(ctx, audit.IncidentFilter{Tenant: "p", Since: baseTime.Add(20 * time.Minute), Limit: 100})
		noErr(t, err)
		if len(page.Incidents) != 5 {
			t.Fatalf("since filter: %d, want 5", len(page.Incidents))
		}
	})
}

// runFindingRetention checks audit.FindingRetention: findings and
// incidents expire with their last evidence, response actions with their
// creation, per tenant, whatever their status, each with its alert mark;
// a dry run deletes nothing.
func runFindingRetention(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	r, ok := b.Findings.(audit.FindingRetention)
	if !ok || b.Incidents == nil {
		t.Skip("backend has no finding retention")
	}
	ctx := t.Context()
	old, recent := baseTime, baseTime.Add(30*24*time.Hour)
	cut := baseTime.Add(10 * 24 * time.Hour)
	var fs []audit.Finding
	for _, tenant := range []string{"a", "b"} {
		f1, f2, f3 := finding(tenant, "old-open", old), finding(tenant, "old-resolved", old), finding(tenant, "recent", recent)
		f1.IncidentID, f2.IncidentID, f3.IncidentID = "i-old", "i-old", "i-new"
		fs = append(fs, f1, f2, f3)
		noErr(t, b.Findings.UpsertFindings(ctx, []audit.Finding{f1, f2, f3}))
		noErr(t, b.Incidents.UpsertIncidents(ctx, []audit.Incident{
			incident(tenant, "i-old", old, "old-open", "old-resolved"), incident(tenant, "i-new", recent, "recent")}))
		_, err := b.Findings.UpdateFinding(ctx, tenant, "old-resolved", audit.FindingUpdate{Status: audit.StatusResolved, Note: "benign"})
		noErr(t, err)
		if b.Actions != nil {
			for _, a := range []audit.ResponseAction{
				{ID: "act-old", CreatedAt: old}, {ID: "act-old-done", CreatedAt: old}, {ID: "act-recent", CreatedAt: recent}} {
				a.Tenant, a.Type, a.ActorID, a.RequestedBy, a.Severity = tenant, audit.RespRevokeSessions, "alice", "rule:stuffing", audit.SeverityHigh
				a.Status, a.UpdatedAt = audit.ActionRequested, a.CreatedAt
				created, err := b.Actions.CreateAction(ctx, a)
				noErr(t, err)
				if !created {
					t.Fatalf("action %s/%s not created", tenant, a.ID)
				}
			}
			// Whatever its status, an old action goes.
			_, err = b.Actions.UpdateAction(ctx, tenant, "act-old-done", audit.ActionSucceeded, "", old.Add(time.Minute))
			noErr(t, err)
		}
	}
	// actionsLeft reports which of the test's actions tenant still has.
	allActions := []string{"act-old", "act-old-done", "act-recent"}
	actionsLeft := func(tenant string) []string {
		t.Helper()
		var left []string
		for _, id := range allActions {
			_, err := b.Actions.GetAction(ctx, tenant, id)
			if err == nil {
				left = append(left, id)
				continue
			}
			wantCode(t, err, audit.ENOTFOUND)
		}
		return left
	}
	_, _, err := r.PurgeFindings(ctx, "", cut, false)
	wantCode(t, err, audit.EINVALID)

	nf, ni, err := r.PurgeFindings(ctx, "a", cut, true)
	noErr(t, err)
	if nf != 2 || ni != 1 {
		t.Fatalf("dry run counted %d findings and %d incidents, want 2 and 1", nf, ni)
	}
	if _, err := b.Findings.GetFinding(ctx, "a", "old-open"); err != nil {
		t.Fatalf("the dry run deleted: %v", err)
	}
	if b.Actions != nil {
		if left := actionsLeft("a"); !slices.Equal(left, allActions) {
			t.Fatalf("after the dry run tenant a has actions %v, want %v", left, allActions)
		}
	}
	nf, ni, err = r.PurgeFindings(ctx, "a", cut, false)
	noErr(t, err)
	// Response actions go too, but are not counted.
	if nf != 2 || ni != 1 {
		t.Fatalf("purged %d findings and %d incidents, want 2 and 1", nf, ni)
	}
	for _, id := range []string{"old-open", "old-resolved"} {
		_, err := b.Findings.GetFinding(ctx, "a", id)
		wantCode(t, err, audit.ENOTFOUND)
	}
	_, err = b.Incidents.GetIncident(ctx, "a", "i-old")
	wantCode(t, err, audit.ENOTFOUND)
	if _, err := b.Findings.GetFinding(ctx, "a", "recent"); err != nil {
		t.Fatalf("a recent finding went: %v", err)
	}
	if _, err := b.Incidents.GetIncident(ctx, "a", "i-new"); err != nil {
		t.Fatalf("a recent incident went: %v", err)
	}
	for _, id := range []string{"old-open", "old-resolved", "recent"} {
		if _, err := b.Findings.GetFinding(ctx, "b", id); err != nil {
			t.Fatalf("tenant b lost finding %s: %v", id, err)
		}
	}
	if b.Actions != nil {
		if left := actionsLeft("a"); !slices.Equal(left, []string{"act-recent"}) {
			t.Fatalf("after the purge tenant a has actions %v, want [act-recent]", left)
		}
		if left := actionsLeft("b"); !slices.Equal(left, allActions) {
			t.Fatalf("after tenant a's purge tenant b has actions %v, want %v", left, allActions)
		}
	}
	if nf, ni, err := r.PurgeFindings(ctx, "a", cut, false); err != nil || nf != 0 || ni != 0 {
		t.Fatalf("second purge: %d findings, %d incidents, %v", nf, ni, err)
	}

	// The alert marks went with what they marked: the same findings and
	// incident stored again are alerted as opened, like new ones, while
	// those still stored (tenant a's recent ones, all of tenant b's) alert
	// nothing.
	if b.Alerts == nil {
		return
	}
	logged, err := b.Alerts.ChangesAfter(ctx, 0, 1000)
	noErr(t, err)
	var last int64
	if len(logged) > 0 {
		last = logged[len(logged)-1].Seq
	}
	noErr(t, b.Findings.UpsertFindings(ctx, fs))
	for _, tenant := range []string{"a", "b"} {
		noErr(t, b.Incidents.UpsertIncidents(ctx, []audit.Incident{
			incident(tenant, "i-old", old, "old-open", "old-resolved"), incident(tenant, "i-new", recent, "recent")}))
	}
	cs, err := b.Alerts.ChangesAfter(ctx, last, 1000)
	noErr(t, err)
	var got []string
	for _, c := range cs {
		got = append(got, fmt.Sprintf("%s %s/%s %s", c.Kind, c.Tenant, c.EntityID, c.Change))
	}
	slices.Sort(got)
	want := []string{"finding a/old-open opened", "finding a/old-resolved opened", "incident a/i-old opened"}
	if !slices.Equal(got, want) {
		t.Fatalf("changes of the records stored again after the purge:\n got %q\nwant %q", got, want)
	}
}
