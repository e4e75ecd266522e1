package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
)

// series counts the series of every metric family in reg, and the bytes
// of their label values.
func series(t *testing.T, reg *prometheus.Registry) (n, labelBytes int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n++
			for _, l := range m.GetLabel() {
				labelBytes += len(l.GetValue())
			}
		}
	}
	return n, labelBytes
}

// TestUnknownKeysAddNoMetricSeries: 200 events with 200 distinct unknown
// keys (each up to 1 KiB) must not become 200 series of
// vigil_ingest_rejects_total. Before the fix each key was a label value.
func TestUnknownKeysAddNoMetricSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := memstream.New(memstream.Options{})
	t.Cleanup(func() { st.Close() })
	svc, err := ingest.New(ingest.Options{
		Stream:       st,
		TenantExists: func(context.Context, string) (bool, error) { return true, nil },
		Now:          func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
		Registerer:   reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	acme := audit.Principal{Tenant: "acme", Scopes: []audit.Scope{audit.ScopeEventsWrite}}
	send := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, `{"action":"billing.paid","actor":{"id":"u"},"k%04d%s":1}`+"\n", i, strings.Repeat("x", 1000))
			fmt.Fprintf(&b, `{"action":"billing.paid","actor":{"id":"u","x%04d":1}}`+"\n", i)
			fmt.Fprintf(&b, `{"action":"billing.paid","context":{"geo":{"g%04d":1}}}`+"\n", i)
		}
		items, err := ingest.Decode([]byte(b.String()), ingest.FormatNDJSON)
		if err != nil {
			t.Fatal(err)
		}
		res, err := svc.Ingest(t.Context(), acme, items)
		if err != nil || res.Rejected != len(items) {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
	}
	send(0, 1)
	base, _ := series(t, reg)
	send(1, 201)
	n, labelBytes := series(t, reg)
	if n != base {
		t.Fatalf("200 more events with distinct unknown keys added %d series", n-base)
	}
	if labelBytes > 4096 {
		t.Fatalf("label values total %d bytes", labelBytes)
	}
}

// TestRejectLabelsAreBounded pins the label space the docs promise
// (docs/operations.md: at most 9 codes × 34 fields).
func TestRejectLabelsAreBounded(t *testing.T) {
	if n := ingest.RejectFieldLabels(); n > 34 {
		t.Fatalf("%d field labels; update docs/operations.md", n)
	}
}
