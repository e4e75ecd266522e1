package sqlite_test

import (
	"bytes"
	"crypto/ed25519"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// sealFixture stores n generated events over two UTC days and returns them.
func sealFixture(t *testing.T, db *sqlite.DB, n int) []audit.Event {
	t.Helper()
	g := newGen(3)
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]audit.Event, n)
	step := 48 * time.Hour / time.Duration(n)
	for i := range evs {
		evs[i] = g.event(day.Add(time.Duration(i) * step))
	}
	for s := 0; s < n; s += 1000 {
		if err := db.Events().InsertEvents(t.Context(), evs[s:min(s+1000, n)]); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// snapshot reads every event back, and one actor's timeline.
func snapshot(t *testing.T, db *sqlite.DB, evs []audit.Event) (map[string]*audit.Event, []audit.Event) {
	t.Helper()
	got := map[string]*audit.Event{}
	for i := range evs {
		ev, err := db.Events().GetEvent(t.Context(), evs[i].Tenant, evs[i].ID)
		if err != nil {
			t.Fatalf("get %s: %v", evs[i].ID, err)
		}
		got[ev.ID] = ev
	}
	page, err := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: evs[0].Tenant, ActorID: evs[0].Actor.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	all, err := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: evs[1].Tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return got, append(page.Events, all.Events...)
}

func partitionBytes(t *testing.T, dir string) int64 {
	t.Helper()
	n, err := sqlite.DirBytes(filepath.Join(dir, "events"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSealKeepsEveryEventAndShrinksTheFiles(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, sqlite.Options{Dir: dir, SealAfter: -1})
	const n = 20_000
	evs := sealFixture(t, db, n)
	before, beforeSearch := snapshot(t, db, evs)
	if err := db.Close(); err != nil { // checkpoint the WAL: compare file sizes
		t.Fatal(err)
	}
	size0 := partitionBytes(t, dir)
	db = openDB(t, sqlite.Options{Dir: dir, SealAfter: -1})

	sealed, err := sqlite.SealNow(t.Context(), db.Events())
	if err != nil || sealed != n {
		t.Fatalf("seal = %d, %v; want %d", sealed, err, n)
	}
	if again, err := sqlite.SealNow(t.Context(), db.Events()); err != nil || again != 0 {
		t.Fatalf("second seal = %d, %v; want 0", again, err)
	}
	after, afterSearch := snapshot(t, db, evs)
	if !reflect.DeepEqual(before, after) {
		t.Fatal("events read back after the seal differ from before")
	}
	if !reflect.DeepEqual(beforeSearch, afterSearch) {
		t.Fatal("searches after the seal differ from before")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	size1 := partitionBytes(t, dir)
	t.Logf("partitions: %.0f B/event before the seal, %.0f after", float64(size0)/n, float64(size1)/n)
	if size1 > size0*3/4 {
		t.Fatalf("sealed partitions take %d bytes, unsealed %d: expected at least a quarter less", size1, size0)
	}
	// Reopened, the sealed files still read back the same.
	db = openDB(t, sqlite.Options{Dir: dir, SealAfter: -1})
	if again, _ := snapshot(t, db, evs); !reflect.DeepEqual(before, again) {
		t.Fatal("events read back after reopening differ")
	}
}

func TestSealedLateEventsAreSealedNext(t *testing.T) {
	db := openDB(t, sqlite.Options{SealAfter: -1})
	evs := sealFixture(t, db, 3_000)
	if _, err := sqlite.SealNow(t.Context(), db.Events()); err != nil {
		t.Fatal(err)
	}
	// A late event of a sealed day is stored inline, readable at once,
	// and sealed by the next pass.
	late := evs[10]
	late.ID = "late-1"
	late.Time = late.Time.Add(time.Millisecond)
	if err := db.Events().InsertEvents(t.Context(), []audit.Event{late}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Events().GetEvent(t.Context(), late.Tenant, late.ID); err != nil || got.Actor != late.Actor {
		t.Fatalf("late event = %+v, %v", got, err)
	}
	// One late event is not worth rewriting the file for: the background
	// seal waits for a block's worth.
	far := time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
	if n, err := db.Events().Seal(t.Context(), far, far); err != nil || n != 0 {
		t.Fatalf("background seal after one late event = %d, %v; want 0", n, err)
	}
	if n, err := sqlite.SealNow(t.Context(), db.Events()); err != nil || n != 1 {
		t.Fatalf("seal after a late event = %d, %v; want 1", n, err)
	}
	if got, err := db.Events().GetEvent(t.Context(), late.Tenant, late.ID); err != nil || got.Actor != late.Actor {
		t.Fatalf("late event after its seal = %+v, %v", got, err)
	}
}

func TestSealWaitsForTheEndOfThePeriodAndQuiet(t *testing.T) {
	db := openDB(t, sqlite.Options{SealAfter: -1})
	evs := sealFixture(t, db, 1_000) // 2026-10-01 and 2026-10-02
	ctx := t.Context()
	day2 := time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC)
	far := time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
	// Before the second day ends, only the first is sealed.
	n, err := db.Events().Seal(ctx, day2.Add(12*time.Hour), far)
	if err != nil || n == 0 || n >= int64(len(evs)) {
		t.Fatalf("seal before the second day ended = %d, %v; want the first day's events only", n, err)
	}
	// Inserted into a moment ago: not quiet yet.
	late := evs[len(evs)-1]
	late.ID = "late-2"
	if err := db.Events().InsertEvents(ctx, []audit.Event{late}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Events().Seal(ctx, far, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("seal of a partition written a moment ago = %d, %v; want 0", n, err)
	}
	if m, err := db.Events().Seal(ctx, far, far); err != nil || m != int64(len(evs))-n+1 {
		t.Fatalf("seal of the rest = %d, %v; want %d", m, err, int64(len(evs))-n+1)
	}
}

// TestSealedErasureAndPurgeLeaveNoOriginal checks that a block never keeps
// the body of an event that was replaced (erasure) or purged.
func TestSealedErasureAndPurgeLeaveNoOriginal(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, sqlite.Options{Dir: dir, SealAfter: -1})
	evs := sealFixture(t, db, 2_000)
	ctx := t.Context()
	if _, err := sqlite.SealNow(ctx, db.Events()); err != nil {
		t.Fatal(err)
	}
	// Erase: the replaced event's request id must be gone from every block.
	victim := evs[500]
	secret := []byte(victim.Context.RequestID)
	erased := victim
	erased.Context.RequestID = ""
	erased.Actor.ID = "erased"
	if n, err := db.Events().ReplaceEvents(ctx, []audit.Event{erased}); err != nil || n != 1 {
		t.Fatalf("replace = %d, %v", n, err)
	}
	got, err := db.Events().GetEvent(ctx, victim.Tenant, victim.ID)
	if err != nil || got.Actor.ID != "erased" || got.Context.RequestID != "" {
		t.Fatalf("erased event reads %+v, %v", got, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events", "*.db"))
	contains := func(needle []byte) bool {
		for _, f := range files {
			blocks, err := sqlite.BlockSlots(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, slots := range blocks {
				for _, s := range slots {
					if bytes.Contains(s, needle) {
						return true
					}
				}
			}
		}
		return false
	}
	if contains(secret) {
		t.Fatal("the erased event's original body is still in a block")
	}
	// Its neighbours in the block still read back.
	for _, i := range []int{499, 501} {
		if _, err := db.Events().GetEvent(ctx, evs[i].Tenant, evs[i].ID); err != nil {
			t.Fatalf("neighbour %d: %v", i, err)
		}
	}

	// Purge a tenant up to the middle of the first day: the purged events'
	// bodies leave the blocks, the later ones stay readable.
	tenant := evs[0].Tenant
	cut := time.Date(2026, 10, 1, 13, 0, 0, 0, time.UTC)
	if _, err := db.Events().Purge(ctx, tenant, cut); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Tenant != tenant || i == 500 {
			continue
		}
		_, err := db.Events().GetEvent(ctx, ev.Tenant, ev.ID)
		if ev.Time.Before(cut) {
			if audit.ErrorCode(err) != audit.ENOTFOUND {
				t.Fatalf("purged event %s: %v", ev.ID, err)
			}
			if contains([]byte(ev.Context.RequestID)) {
				t.Fatalf("purged event %s's body is still in a block", ev.ID)
			}
		} else if err != nil {
			t.Fatalf("kept event %s: %v", ev.ID, err)
		}
	}
}

// TestSealedEventsVerify checks that tamper evidence holds across a seal:
// the events read back from blocks hash to the leaves chained when they
// were stored, before and after an erasure-free seal, and a purge of part
// of a sealed day still verifies by its tombstone.
func TestSealedEventsVerify(t *testing.T) {
	db := openDB(t, sqlite.Options{SealAfter: -1})
	ctx := t.Context()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := integrity.New(integrity.Options{Events: db.Events(), Store: db, Retention: db.Events(), Signer: integrity.NewSigner(priv)})
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(5)
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]audit.Event, 3000)
	for i := range evs {
		evs[i] = g.event(day.Add(time.Duration(i) * 48 * time.Second))
	}
	for s := 0; s < len(evs); s += 500 {
		if err := rec.InsertEvents(ctx, evs[s:s+500]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	verify := func(when string) {
		t.Helper()
		tenants, err := db.ChainTenants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := rec.Verifier().Verify(ctx, tenants, "", "")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if !rep.OK || rep.Broken != nil {
			t.Fatalf("%s: report %+v, broken %+v", when, rep, rep.Broken)
		}
		if when == "before the seal" && rep.Events != int64(len(evs)) {
			t.Fatalf("%s: verified %d events, want %d", when, rep.Events, len(evs))
		}
	}
	verify("before the seal")
	if n, err := sqlite.SealNow(ctx, db.Events()); err != nil || n != int64(len(evs)) {
		t.Fatalf("seal = %d, %v", n, err)
	}
	verify("after the seal")
	if _, err := rec.Purge(ctx, evs[0].Tenant, time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	verify("after purging a sealed day")
}
