package storetest

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// runDerivedRewrite checks audit.DerivedRewriter: findings and incidents
// rewritten in place keep their triage, are never created, stay in their
// tenant and record no change.
func runDerivedRewrite(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	fs, is := b.Findings, b.Incidents
	rw, ok := fs.(audit.DerivedRewriter)
	if fs == nil || is == nil || !ok {
		t.Skip("backend cannot rewrite findings and incidents")
	}
	ctx := t.Context()
	f := finding("a", "f1", baseTime)
	f.IncidentID = "i1"
	other := finding("b", "f1", baseTime)
	noErr(t, fs.UpsertFindings(ctx, []audit.Finding{f, other}))
	inc := incident("a", "i1", baseTime, "f1")
	inc.Summary = "alice logged in from 203.0.113.7"
	noErr(t, is.UpsertIncidents(ctx, []audit.Incident{inc, incident("b", "i1", baseTime, "f1")}))
	_, err := fs.UpdateFinding(ctx, "a", "f1", audit.FindingUpdate{Status: audit.StatusResolved, Note: "was me", Resolution: audit.ResolutionBenign, At: baseTime.Add(time.Hour)})
	noErr(t, err)
	_, err = is.UpdateIncident(ctx, "a", "i1", audit.IncidentUpdate{Status: audit.StatusAcknowledged, Note: "looking", At: baseTime.Add(time.Hour)})
	noErr(t, err)
	triaged, err := fs.GetFinding(ctx, "a", "f1")
	noErr(t, err)
	triagedInc, err := is.GetIncident(ctx, "a", "i1")
	noErr(t, err)
	alerts, _ := fs.(audit.AlertStore)
	var changes int
	if alerts != nil {
		cs, err := alerts.ChangesAfter(ctx, 0, 1000)
		noErr(t, err)
		changes = len(cs)
	}

	// The rewrite is built from a copy read before the triage: it must
	// not undo the triage.
	f.IP, f.Explanation, f.Facts = "", "[erased] failed", map[string]any{"ip": "[erased]"}
	ghost := finding("a", "ghost", baseTime)
	noErr(t, rw.RewriteFindings(ctx, []audit.Finding{f, ghost}))
	inc.IPs, inc.Summary = nil, "alice logged in from [erased]"
	ghostInc := incident("a", "ghost", baseTime)
	noErr(t, rw.RewriteIncidents(ctx, []audit.Incident{inc, ghostInc}))

	got, err := fs.GetFinding(ctx, "a", "f1")
	noErr(t, err)
	want := f
	want.Status, want.Note, want.Resolution, want.CreatedAt = triaged.Status, triaged.Note, triaged.Resolution, triaged.CreatedAt
	sameJSON(t, "rewritten finding", *got, want)
	gotInc, err := is.GetIncident(ctx, "a", "i1")
	noErr(t, err)
	wantInc := inc
	wantInc.Status, wantInc.Note, wantInc.CreatedAt = triagedInc.Status, triagedInc.Note, triagedInc.CreatedAt
	sameJSON(t, "rewritten incident", *gotInc, wantInc)

	_, err = fs.GetFinding(ctx, "a", "ghost")
	wantCode(t, err, audit.ENOTFOUND)
	_, err = is.GetIncident(ctx, "a", "ghost")
	wantCode(t, err, audit.ENOTFOUND)
	gotOther, err := fs.GetFinding(ctx, "b", "f1")
	noErr(t, err)
	if gotOther.IP != "203.0.113.7" || gotOther.Explanation != other.Explanation {
		t.Fatalf("tenant b's finding changed: %+v", gotOther)
	}
	otherInc, err := is.GetIncident(ctx, "b", "i1")
	noErr(t, err)
	if len(otherInc.IPs) != 1 {
		t.Fatalf("tenant b's incident changed: %+v", otherInc)
	}
	if alerts != nil {
		cs, err := alerts.ChangesAfter(ctx, 0, 1000)
		noErr(t, err)
		if len(cs) != changes {
			t.Fatalf("a rewrite recorded %d alert changes", len(cs)-changes)
		}
	}
	// Searches list the rewritten version.
	page, err := fs.SearchFindings(ctx, audit.FindingFilter{Tenant: "a", ActorID: "alice"})
	noErr(t, err)
	if len(page.Findings) != 1 || page.Findings[0].IP != "" {
		t.Fatalf("search after the rewrite: %+v", page.Findings)
	}
}
