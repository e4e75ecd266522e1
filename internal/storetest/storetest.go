// Package storetest is the conformance suite every storage backend runs:
// SQLite always, PostgreSQL when a URL is given, NATS (streams) when its
// embedded server is available. Each test checks one clause of the contracts
// written on the interfaces of internal/audit.
//
// A backend's test calls Run with a function that opens a fresh, empty
// backend per subtest:
//
//	storetest.Run(t, func(t *testing.T) storetest.Backend { … })
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
)

// Backend is what one backend offers to the suite. A nil field skips the
// tests of that contract (a stream-only backend leaves the stores nil).
type Backend struct {
	Stream   audit.EventStream
	Events   audit.EventStore
	Tenants  audit.TenantStore
	Keys     audit.KeyStore
	Findings audit.FindingStore
	// Incidents is tested together with Findings (triage cascades and
	// merges move findings).
	Incidents audit.IncidentStore
	State     audit.StateStore
	Rules     audit.RuleStore
	// Actions keeps response actions; nil skips their tests.
	Actions audit.ActionStore
	// Integrity keeps hash chains and signed statements; nil skips them.
	Integrity audit.IntegrityStore
	// Viewers keeps viewer-token records and Searches the saved
	// searches; nil skips their tests.
	Viewers  audit.ViewerTokenStore
	Searches audit.SavedSearchStore
	// Alerts keeps webhook subscriptions and their outbox; SIEM the SIEM
	// sinks' cursors over the same change log. Both need Findings to make
	// changes; nil skips their tests.
	Alerts audit.AlertStore
	SIEM   audit.SIEMStore
	// Query runs investigation queries over Events; nil skips the
	// query-language suite.
	Query audit.QueryRunner
	// Reopen closes the backend and opens it again on the same data, for
	// the durability tests; nil skips them. The suite closes nothing else:
	// open registers its own cleanup.
	Reopen func(t *testing.T) Backend
}

// Run runs the whole suite against backends made by open.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("Stream", func(t *testing.T) { runStream(t, open) })
	t.Run("Events", func(t *testing.T) { runEvents(t, open) })
	t.Run("Tenants", func(t *testing.T) { runTenants(t, open) })
	t.Run("Keys", func(t *testing.T) { runKeys(t, open) })
	t.Run("Findings", func(t *testing.T) { runFindings(t, open) })
	t.Run("Incidents", func(t *testing.T) { runIncidents(t, open) })
	t.Run("FindingRetention", func(t *testing.T) { runFindingRetention(t, open) })
	t.Run("FindingResolution", func(t *testing.T) { runFindingResolution(t, open) })
	t.Run("DerivedRewrite", func(t *testing.T) { runDerivedRewrite(t, open) })
	t.Run("State", func(t *testing.T) { runState(t, open) })
	t.Run("Rules", func(t *testing.T) { runRules(t, open) })
	t.Run("Actions", func(t *testing.T) { runActions(t, open) })
	t.Run("Integrity", func(t *testing.T) { runIntegrity(t, open) })
	t.Run("Query", func(t *testing.T) { runQuery(t, open) })
	t.Run("Viewers", func(t *testing.T) { runViewers(t, open) })
	t.Run("Searches", func(t *testing.T) { runSearches(t, open) })
	t.Run("Alerts", func(t *testing.T) { runAlerts(t, open) })
	t.Run("SIEM", func(t *testing.T) { runSIEM(t, open) })
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := audit.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// canon renders a value as JSON decoded again, so that events compare the
// way they travel (metadata numbers as float64, times in UTC).
func canon(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	noErr(t, err)
	var out any
	noErr(t, json.Unmarshal(b, &out))
	return out
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(canon(t, want), canon(t, got)); d != "" {
		t.Fatalf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func contextCancelled(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx, cancel
}
