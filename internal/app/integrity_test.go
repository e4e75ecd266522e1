package app_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
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
	// An event is searchable a moment before the recorder chains it (the
	// store's insert comes first): the checkpoint must see the links.
	waitChained(t, n, "acme", days[0], 3)
	waitChained(t, n, "acme", days[1], 3)
	waitChained(t, n, "other", days[0], 1)
	checkpoint(t, n)
	return n, dir, days
}

// waitChained waits until tenant's chain of day holds want links.
func waitChained(t *testing.T, n *node, tenant string, day time.Time, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := n.app.Integrity().Store().ChainHead(t.Context(), tenant, integrity.Day(day))
		if err != nil {
			t.Fatal(err)
		}
		if h.Count >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's chain of %s holds %d links, want %d", tenant, integrity.Day(day), h.Count, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkpoint(t *testing.T, n *node) {
	t.Helper()
	if _, err := n.app.Integrity().Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// verify runs the verify function over acme's two test days (today's
// chain holds the read-audit records of the test's own searches) and
// fails unless it reports want (reason and event; "" for a clean report).
func verify(t *testing.T, n *node, reason, event string) *audit.IntegrityReport {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	rep, err := n.app.Verify(t.Context(), "acme", today.AddDate(0, 0, -3).Format("2006-01-02"), today.AddDate(0, 0, -2).Format("2006-01-02"))
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
		// Links 1 and 2 trade places in the day's block: each id, 5
		// characters, is stored as 7 bytes (tag, length, text), the leaves
		// as a form byte and 32 bytes each.
		exec(t, meta, `UPDATE chain_blocks SET ids = CAST(substr(ids, 8, 7) || substr(ids, 1, 7) || substr(ids, 15) AS BLOB),
			leaves = CAST(substr(leaves, 1, 1) || substr(leaves, 34, 32) || substr(leaves, 2, 32) || substr(leaves, 66) AS BLOB)
			WHERE chain = (SELECT id FROM chains WHERE tenant = 'acme' AND day = ?) AND first_seq = 1`, day)
		verify(t, n, integrity.ReasonBrokenLink, "d0-e1")
	})
	t.Run("inserted row", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		exec(t, partition(t, dir, days[0]), `INSERT INTO events (t, ts, id, idh, act, ah, ip, sh, gh, body)
			SELECT t, ts + 1000, 'forged', idh + 1, act, ah, ip, sh, gh, body FROM events WHERE id = 'd0-e0'`)
		verify(t, n, integrity.ReasonInserted, "forged")
	})
}

func metaDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "meta.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestVerifySignedStatements: a checkpoint whose text or signature was
// changed is caught; links beyond the last checkpoint are an unsigned
// tail (reported, not a failure); links removed from the end of a signed
// chain are caught.
func TestVerifySignedStatements(t *testing.T) {
	t.Run("forged checkpoint", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		// Claim one link fewer (hiding the last event) with the old signature.
		exec(t, metaDB(t, dir), `UPDATE integrity_statements SET body = replace(body, '"count":3', '"count":2')
			WHERE tenant = 'acme' AND kind = 'checkpoint' AND key = ?`, days[1].Format("2006-01-02"))
		rep := verify(t, n, integrity.ReasonSignature, "")
		if rep.Broken.Day != days[1].Format("2006-01-02") {
			t.Fatalf("broken day: %+v", rep.Broken)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		n, dir, _ := chainedNode(t)
		exec(t, metaDB(t, dir), `UPDATE integrity_statements SET sig = zeroblob(64) WHERE tenant = 'acme' AND kind = 'checkpoint'`)
		verify(t, n, integrity.ReasonSignature, "")
	})
	t.Run("truncated chain", func(t *testing.T) {
		n, dir, days := chainedNode(t)
		day := days[1].Format("2006-01-02")
		// The last event and its link go, and the head is rewound: only
		// the signed checkpoint still knows there were three.
		second, err := n.app.Integrity().Store().ChainEntries(t.Context(), "acme", day, 1, 1)
		if err != nil || len(second) != 1 {
			t.Fatalf("link 2: %+v %v", second, err)
		}
		exec(t, partition(t, dir, days[1]), `DELETE FROM events WHERE id = 'd1-e2'`)
		meta := metaDB(t, dir)
		// The day's block keeps its first two links (ids of 7 bytes,
		// leaves of 32 after a form byte).
		exec(t, meta, `UPDATE chain_blocks SET n = 2, ids = substr(ids, 1, 14), leaves = substr(leaves, 1, 65)
			WHERE chain = (SELECT id FROM chains WHERE tenant = 'acme' AND day = ?) AND first_seq = 1`, day)
		exec(t, meta, `DELETE FROM chain_ids WHERE chain = (SELECT id FROM chains WHERE tenant = 'acme' AND day = ?) AND seq = 3`, day)
		exec(t, meta, `UPDATE chain_heads SET count = 2, head = ? WHERE tenant = 'acme' AND day = ?`, second[0].Hash, day)
		rep := verify(t, n, integrity.ReasonCheckpoint, "")
		if rep.Broken.Day != day || rep.Broken.Seq != 3 {
			t.Fatalf("broken: %+v", rep.Broken)
		}
	})
	t.Run("unsigned tail", func(t *testing.T) {
		n, _, days := chainedNode(t)
		if _, err := n.op.Send(t.Context(), client.Event{ID: "late", Tenant: "acme", Action: "app.report.viewed",
			Time: days[1].Add(time.Hour), Actor: client.Actor{ID: "alice"}}); err != nil {
			t.Fatal(err)
		}
		waitForEvents(t, n.op.ForTenant("acme"), client.SearchParams{Actor: "alice"}, 7)
		waitChained(t, n, "acme", days[1], 4)
		rep := verify(t, n, "", "")
		if len(rep.Unsigned) != 1 || rep.Unsigned[0].Signed != 3 || rep.Unsigned[0].Links != 4 {
			t.Fatalf("unsigned tail: %+v", rep.Unsigned)
		}
		checkpoint(t, n)
		if rep := verify(t, n, "", ""); len(rep.Unsigned) != 0 || rep.Events != 7 {
			t.Fatalf("after a checkpoint: %+v", rep)
		}
	})
}

// TestPurgedDayVerifiesByTombstone: retention purges the older day; its
// chain links go with the events, a signed tombstone stands for them, and
// verification passes. A forged tombstone is caught.
func TestPurgedDayVerifiesByTombstone(t *testing.T) {
	n, dir, days := chainedNode(t)
	two := 2
	if _, err := n.op.UpdateTenant(t.Context(), "acme", client.UpdateTenantRequest{RetentionDays: &two}); err != nil {
		t.Fatal(err)
	}
	reports, err := n.op.RunRetention(t.Context(), "acme", false)
	if err != nil || len(reports) != 1 || reports[0].Events != 3 {
		t.Fatalf("retention: %+v %v", reports, err)
	}
	var links int
	if err := metaDB(t, dir).QueryRow(`SELECT coalesce(sum(n), 0) FROM chain_blocks WHERE chain = (SELECT id FROM chains WHERE tenant = 'acme' AND day = ?)`,
		days[0].Format("2006-01-02")).Scan(&links); err != nil || links != 0 {
		t.Fatalf("links of the purged day: %d %v", links, err)
	}
	rep := verify(t, n, "", "")
	if rep.Tombstones != 1 || rep.Days != 2 || rep.Events != 3 {
		t.Fatalf("after the purge: %+v", rep)
	}
	// The whole history verifies too, today's records (the purge's,
	// the test's reads; some may still be unsigned) included.
	if all, err := n.app.Verify(t.Context(), "", "", ""); err != nil || !all.OK {
		t.Fatalf("every tenant, every day: %+v %v", all, err)
	}
	exec(t, metaDB(t, dir), `UPDATE integrity_statements SET body = replace(body, '"count":3', '"count":4') WHERE tenant = 'acme' AND kind = 'tombstone'`)
	verify(t, n, integrity.ReasonSignature, "")
}

// TestErasureKeepsVerifying: erasing an actor's IP, user agent and e-mail
// redacts them in stored events, is recorded in the tenant's log, and
// verification still passes; an erased value edited to anything but its
// erased form fails, as does a tampered erasure record.
func TestErasureKeepsVerifying(t *testing.T) {
	n, dir, days := chainedNode(t)
	acme, _ := n.tenantClient(t, "acme")
	rep, err := acme.Erase(t.Context(), client.ErasureRequest{Actor: "alice", Fields: []string{"context.ip", "context.user_agent", "actor.email", "metadata"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 6 || rep.Values != 24 {
		t.Fatalf("erasure report: %+v", rep)
	}
	ev, err := acme.GetEvent(t.Context(), "d0-e1")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Context.IP != "" || ev.Context.UserAgent != integrity.Erased || ev.Actor.Email != integrity.Erased || len(ev.Metadata) != 0 || ev.Context.SessionID != "s1" {
		t.Fatalf("erased event: %+v", ev)
	}
	if got := waitRecords(t, n.op, "acme", audit.ActionErasureCompleted, 1); got[0].Target.ID != "alice" ||
		got[0].Metadata["erasure_id"] != rep.ID {
		t.Fatalf("erasure record in the log: %+v", got[0])
	}
	checkpoint(t, n)
	vr := verify(t, n, "", "")
	if vr.Erasures != 2 {
		t.Fatalf("erasure records checked: %+v", vr)
	}
	// Again: nothing left to erase.
	if again, err := acme.Erase(t.Context(), client.ErasureRequest{Actor: "alice", Fields: []string{"context.ip"}}); err != nil || again.Values != 0 {
		t.Fatalf("second erasure: %+v %v", again, err)
	}
	if _, err := acme.Erase(t.Context(), client.ErasureRequest{Actor: "alice", Fields: []string{"actor.id"}}); err == nil {
		t.Fatal("actor.id was accepted as an erasable field")
	}

	t.Run("edited erased value", func(t *testing.T) {
		ev, err := n.app.Stores().Events.GetEvent(t.Context(), "acme", "d0-e1")
		if err != nil {
			t.Fatal(err)
		}
		ev.Context.UserAgent = "curl/8.0" // anything but the erased form
		if _, err := n.app.Stores().Events.(audit.EventRewriter).ReplaceEvents(t.Context(), []audit.Event{*ev}); err != nil {
			t.Fatal(err)
		}
		verify(t, n, integrity.ReasonAltered, "d0-e1")
	})
	t.Run("tampered erasure hash", func(t *testing.T) {
		exec(t, metaDB(t, dir), `UPDATE erased_fields SET hash = zeroblob(32) WHERE tenant = 'acme' AND event_id = 'd1-e0' AND field = 'context.ip'`)
		d1 := days[1].Format("2006-01-02")
		rep, err := n.app.Verify(t.Context(), "acme", d1, d1)
		if err != nil || rep.OK || rep.Broken.Reason != integrity.ReasonErasure || rep.Broken.Day != days[1].Format("2006-01-02") {
			t.Fatalf("tampered erasure hash: %+v %v", rep.Broken, err)
		}
	})
}

// TestUpgradeChainsStoredEvents: a data directory whose events were stored
// before tamper evidence (no chains, no marker) has them chained at the
// next start, and verifies.
func TestUpgradeChainsStoredEvents(t *testing.T) {
	n, dir, _ := chainedNode(t)
	// Stopped first: a live node still chains the read-audit records of
	// the test's own searches, and one landing between the deletes would
	// leave a link that no head accounts for.
	n.stop(t)
	meta := metaDB(t, dir)
	tx, err := meta.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM chain_blocks`, `DELETE FROM chain_ids`, `DELETE FROM chain_heads`, `DELETE FROM integrity_statements`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	open := func() *app.App {
		cfg := config.Default()
		cfg.Server.Addr, cfg.Storage.SQLite.Dir, cfg.Log.Level = "127.0.0.1:0", dir, "error"
		a, err := app.New(t.Context(), cfg, app.Options{Stderr: io.Discard, NoBootstrapKey: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	closeApp := func(a *app.App) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_ = a.Run(ctx)
	}
	// With the adoption marker still there, nothing chains the events at
	// start: they are reported as inserted.
	before := open()
	if rep, err := before.Verify(t.Context(), "acme", "", ""); err != nil || rep.OK || rep.Broken.Reason != integrity.ReasonInserted {
		t.Fatalf("before the upgrade: %+v %v", rep, err)
	}
	closeApp(before)
	// Without it: what an upgraded server sees at its first start.
	if err := os.Remove(filepath.Join(dir, app.IntegrityDir, "adopted")); err != nil {
		t.Fatal(err)
	}
	a := open()
	defer closeApp(a)
	if _, err := a.Integrity().Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Verify(t.Context(), "acme", "", "")
	if err != nil || !rep.OK || rep.Events < 6 {
		t.Fatalf("after the upgrade: %+v %v", rep, err)
	}
}

// failingRewriter stands for a crash between an erasure's record and the
// rewrite of the events.
type failingRewriter struct{}

func (failingRewriter) ReplaceEvents(context.Context, []audit.Event) (int, error) {
	return 0, errors.New("crash")
}

// TestErasureResumesAfterACrash: an erasure that stored its records but
// did not rewrite the events still verifies, and erasing again completes
// it without a second record for the same values.
func TestErasureResumesAfterACrash(t *testing.T) {
	n, _, _ := chainedNode(t)
	req := audit.ErasureRequest{Tenant: "acme", Actor: "alice", Fields: []string{"context.ip"}}
	if _, err := n.app.Integrity().Erase(t.Context(), req, failingRewriter{}); err == nil {
		t.Fatal("the failing rewrite was not reported")
	}
	verify(t, n, "", "")
	rw := n.app.Stores().Events.(audit.EventRewriter)
	rep, err := n.app.Integrity().Erase(t.Context(), req, rw)
	if err != nil || rep.Values != 6 {
		t.Fatalf("second erasure: %+v %v", rep, err)
	}
	if ev, err := n.app.Stores().Events.GetEvent(t.Context(), "acme", "d0-e0"); err != nil || ev.Context.IP.IsValid() {
		t.Fatalf("after the second erasure: %+v %v", ev, err)
	}
	if vr := verify(t, n, "", ""); vr.Erasures != 2 {
		t.Fatalf("erasure records: %+v", vr)
	}
}
