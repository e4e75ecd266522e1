package siem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/siem"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// collector is an HTTPS NDJSON receiver on 127.0.0.1.
type collector struct {
	srv *httptest.Server
	ca  string

	mu     sync.Mutex
	refuse bool
	lines  []map[string]any
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.refuse {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			c.lines = append(c.lines, m)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	c.ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(c.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) got() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.lines...)
}

func openDB(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func findings(tenant string, from, to int) []audit.Finding {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var out []audit.Finding
	for i := from; i < to; i++ {
		id := fmt.Sprintf("f-%03d", i)
		out = append(out, audit.Finding{ID: id, Tenant: tenant, RuleID: "brute-force", Severity: audit.SeverityHigh,
			Status: audit.StatusOpen, GroupKey: id, ActorID: "alice", Count: 1, FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at})
	}
	return out
}

func events(tenant string, n int) []*audit.Event {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*audit.Event, n)
	for i := range out {
		out[i] = &audit.Event{ID: fmt.Sprintf("e-%03d", i), Tenant: tenant, Time: at, ReceivedAt: at, Action: "auth.login.success",
			Actor: audit.Actor{ID: "alice"}}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLagBoundsSkipAndReportGaps: a sink whose collector is down keeps
// at most MaxChanges changes and MaxEventLag events; what the bounds
// discard is counted in its cursor and reaches the collector, once it
// recovers, as gap records before the records kept.
func TestLagBoundsSkipAndReportGaps(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, t.TempDir())
	c := newCollector(t)
	c.refuse = true
	svc, err := siem.New(siem.Options{Store: db, Stream: db.Stream(), ConsumerPrefix: sqlite.DetachedPrefix,
		Sinks: []siem.Sink{{Name: "soc", Kind: siem.KindHTTPS, URL: c.srv.URL, CAFile: c.ca, Events: true,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}},
		Poll: 10 * time.Millisecond, MaxChanges: 3, MaxEventLag: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertFindings(ctx, findings("acme", 0, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Stream().Append(ctx, events("acme", 50)); err != nil {
		t.Fatal(err)
	}
	if err := svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	cur, err := db.SIEMCursor(ctx, "soc")
	if err != nil {
		t.Fatal(err)
	}
	if cur.ChangesDropped != 7 {
		t.Fatalf("changes dropped %d, want 7 (10 changes, 3 kept): %+v", cur.ChangesDropped, cur)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // a few refused attempts
	c.mu.Lock()
	c.refuse = false
	c.mu.Unlock()
	waitFor(t, "every kept record", func() bool { return len(c.got()) >= 2+3+20 })
	// The sink commits its cursor after the collector has answered: wait
	// for that commit too, or cancelling may come between the two.
	waitFor(t, "the gaps' cursor commit", func() bool {
		cur, err := db.SIEMCursor(ctx, "soc")
		return err == nil && cur.ChangesReported >= 7 && cur.EventsReported >= 30
	})
	cancel()
	<-done

	var gaps = map[string]float64{}
	var ids []string
	nEvents := 0
	for _, l := range c.got() {
		switch l["type"] {
		case "gap":
			gaps[l["stream"].(string)] += l["dropped"].(float64)
		case "finding":
			ids = append(ids, l["id"].(string))
		case "event":
			nEvents++
		}
	}
	if gaps["changes"] != 7 || gaps["events"] != 30 {
		t.Errorf("gaps %v, want 7 changes and 30 events", gaps)
	}
	if fmt.Sprint(ids) != "[f-007 f-008 f-009]" || nEvents != 20 {
		t.Errorf("kept findings %v and %d events, want the newest 3 and 20", ids, nEvents)
	}
	cur, _ = db.SIEMCursor(ctx, "soc")
	if cur.ChangesReported != 7 || cur.EventsDropped != 30 || cur.EventsReported != 30 {
		t.Errorf("cursor after the gaps were sent: %+v", cur)
	}

	// Removing the sink releases its hold: its stream consumer and cursor
	// go, and the change log no longer keeps anything for it.
	none, err := siem.New(siem.Options{Store: db, Stream: db.Stream(), ConsumerPrefix: sqlite.DetachedPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertFindings(ctx, findings("acme", 10, 12)); err != nil {
		t.Fatal(err)
	}
	if err := none.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if got := db.Stream().Consumers(sqlite.DetachedPrefix); len(got) != 0 {
		t.Errorf("stream consumers left: %v", got)
	}
	if _, err := db.SIEMCursor(ctx, "soc"); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Errorf("cursor of a removed sink: %v", err)
	}
	res, err := db.PruneChanges(ctx, false, 1000, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := db.ChangesAfter(ctx, 0, 100); len(left) != 0 || res.Deleted == 0 {
		t.Errorf("changes kept without a reader: %d (deleted %d)", len(left), res.Deleted)
	}
}
