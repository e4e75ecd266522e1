package app_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/integrity"
)

// chainedNode starts a node and stores, for tenant acme, three events on
// each of two days (plus one for tenant other), all chained and
// checkpointed; it returns the node, its data directory and the two days.
func chainedNode(t *testing.T) (*node, string, [2]time.Time) {
	t.Helper()
	var dir string
	n := startNode(t, func(c *config.Config) { dir, c.Detect.Enabled = c.Storage.SQLite.Dir, false })
	n.tenantClient(t, "acme")
	n.tenantClient(t, "other")
	base := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	days := [2]time.Time{base.Add(10 * time.Hour), base.Add(34 * time.Hour)}
	var evs []client.Event
	for d, at := range days {
		for i := range 3 {
			evs = append(evs, client.Event{ID: fmt.Sprintf("d%d-e%d", d, i), Tenant: "acme", Action: "app.report.viewed",
				Time: at.Add(time.Duration(i) * time.Minute), Actor: client.Actor{ID: "alice", Email: "alice@example.com"},
				Context:  client.Context{IP: fmt.Sprintf("198.51.100.%d", 10+i), UserAgent: "Mozilla/5.0 Firefox/128.0", SessionID: "s1"},
				Metadata: map[string]any{"n": i, "note": "x"}})
		}
	}
	evs = append(evs, client.Event{ID: "o1", Tenant: "other", Action: "app.report.viewed", Time: days[0], Actor: client.Actor{ID: "bob"}})
	if _, err := n.op.Send(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, n.op.ForTenant("acme"), client.SearchParams{Actor: "alice"}, 6)
	waitForEvents(t, n.op.ForTenant("other"), client.SearchParams{Actor: "bob"}, 1)
	checkpoint(t, n)
	return n, dir, days
}

func checkpoint(t *testing.T, n *node) {
	t.Helper()
	if _, err := n.app.Integrity().Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// verify runs the verify function over acme and fails unless it reports
// want (reason and event; "" for a clean report).
func verify(t *testing.T, n *node, reason, event string) *audit.IntegrityReport {
	t.Helper()
	rep, err := n.app.Verify(t.Context(), "acme", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if reason == "" {
		if !rep.OK || rep.Broken != nil {
			t.Fatalf("verify: want ok, got %+v broken %+v", rep, rep.Broken)
		}
		return rep
	}
	if rep.OK || rep.Broken == nil || rep.Broken.Reason != reason || rep.Broken.EventID != event {
		t.Fatalf("verify: want %s at %s, got %+v broken %+v", reason, event, rep, rep.Broken)
	}
	return rep
}

func partition(t *testing.T, dir string, day time.Time) *sql.DB {
	t.Helper()
	path := filepath.Join(dir, "events", day.UTC().Truncate(24*time.Hour).Format("2006010215")+"-24h.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s changed no row", q)
	}
}

// TestVerifyCatchesTampering is the acceptance test of tamper evidence:
// rows altered, deleted, reordered or inserted in the store's files are
// found by the verify function, which names the first broken link.
func TestVerifyCatchesTampering(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		n, _, _ := chainedNode(t)
		rep := verify(t, n, "", "")
		if rep.Days != 2 || rep.Events != 6 || len(rep.Unsigned) != 0 {
			t.Fatalf("clean report: %+v", rep)
		}
	})
	t.Run("altered column", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		exec(t, partition(t, dir, days[1]), `UPDATE events SET ts = ts + 1 WHERE id = 'd1-e1'`)
		verify(t, n, integrity.ReasonAltered, "d1-e1")
	})
	t.Run("altered body", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		db := partition(t, dir, days[0])
		var body []byte
		if err := db.QueryRow(`SELECT body FROM events WHERE id = 'd0-e1'`).Scan(&body); err != nil {
			t.Fatal(err)
		}
		// The body of another event of the same day: valid, but not this event's.
		exec(t, db, `UPDATE events SET body = (SELECT body FROM events WHERE id = 'd0-e2') WHERE id = 'd0-e1'`)
		verify(t, n, integrity.ReasonAltered, "d0-e1")
	})
	t.Run("deleted row", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		exec(t, partition(t, dir, days[0]), `DELETE FROM events WHERE id = 'd0-e2'`)
		verify(t, n, integrity.ReasonDeleted, "d0-e2")
	})
	t.Run("swapped rows", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		db := partition(t, dir, days[1])
		// Swap the two events' times (their positions in the day).
		exec(t, db, `UPDATE events SET ts = CASE id WHEN 'd1-e0' THEN (SELECT ts FROM events WHERE id = 'd1-e2')
			ELSE (SELECT ts FROM events WHERE id = 'd1-e0') END WHERE id IN ('d1-e0', 'd1-e2')`)
		verify(t, n, integrity.ReasonAltered, "d1-e0")
	})
	t.Run("swapped chain sequence", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		meta, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "meta.db")+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		defer meta.Close()
		day := days[0].Format("2006-01-02")
		exec(t, meta, `UPDATE chain_entries SET seq = -seq WHERE tenant = 'acme' AND day = ? AND seq IN (1, 2)`, day)
		exec(t, meta, `UPDATE chain_entries SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE tenant = 'acme' AND day = ? AND seq < 0`, day)
		verify(t, n, integrity.ReasonBrokenLink, "d0-e1")
	})
	t.Run("inserted row", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		exec(t, partition(t, dir, days[0]), `INSERT INTO events (t, ts, id, idh, act, ah, ip, sh, gh, body)
			SELECT t, ts + 1000, 'forged', idh + 1, act, ah, ip, sh, gh, body FROM events WHERE id = 'd0-e0'`)
		verify(t, n, integrity.ReasonInserted, "forged")
	})
}
