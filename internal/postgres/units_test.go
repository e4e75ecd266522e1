package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// openUnitStore opens a migrated store on a fresh schema.
func openUnitStore(t *testing.T) (s *postgres.Store, url, schema string) {
	t.Helper()
	url, schema = pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, url, schema
}

// openUnitLocks opens the unit locks of node holder, closed at the end.
func openUnitLocks(t *testing.T, url, schema, holder string) *postgres.UnitLocks {
	t.Helper()
	l, err := postgres.OpenUnitLocks(t.Context(), url, schema, holder)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// take takes unit with l, which must get it, and returns its epoch.
func take(t *testing.T, l *postgres.UnitLocks, unit string) int64 {
	t.Helper()
	epoch, ok, err := l.TryTake(t.Context(), unit)
	if err != nil || !ok {
		t.Fatalf("TryTake(%s) = %d, %v, %v; want it taken", unit, epoch, ok, err)
	}
	return epoch
}

// refused checks that l cannot take unit: another node holds it.
func refused(t *testing.T, l *postgres.UnitLocks, unit string) {
	t.Helper()
	epoch, ok, err := l.TryTake(t.Context(), unit)
	if err != nil || ok {
		t.Fatalf("TryTake(%s) = %d, %v, %v; want ok=false, another node holding it", unit, epoch, ok, err)
	}
}

func units(t *testing.T, s *postgres.Store) []postgres.Unit {
	t.Helper()
	us, err := s.Units(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return us
}

// ignoreTakenAt compares Units without their time, which the server sets.
var ignoreTakenAt = cmpopts.IgnoreFields(postgres.Unit{}, "TakenAt")

// TestUnitLocksTwoNodes: a unit held by one node is refused to another,
// which takes the free ones; Units shows who took what at which epoch,
// and what is held. Unit locks meet neither the node lock nor another
// schema's unit locks.
func TestUnitLocksTwoNodes(t *testing.T) {
	s, url, schema := openUnitStore(t)
	a := openUnitLocks(t, url, schema, "node-a")
	b := openUnitLocks(t, url, schema, "node-b")
	start := time.Now()
	if e := take(t, a, "p0"); e != 1 {
		t.Fatalf("first epoch of p0 = %d, want 1", e)
	}
	take(t, a, "p1")
	refused(t, b, "p0")
	if e := take(t, b, "p2"); e != 1 {
		t.Fatalf("first epoch of p2 = %d, want 1", e)
	}
	// Taking a unit held already begins no epoch.
	if e := take(t, a, "p0"); e != 1 {
		t.Fatalf("a second TryTake(p0) by its holder = epoch %d, want 1", e)
	}
	if got := a.Held(); !slices.Equal(got, []string{"p0", "p1"}) {
		t.Fatalf("a.Held() = %v", got)
	}
	if got := b.Held(); !slices.Equal(got, []string{"p2"}) {
		t.Fatalf("b.Held() = %v", got)
	}
	got := units(t, s)
	want := []postgres.Unit{
		{Name: "p0", Holder: "node-a", Epoch: 1, Held: true},
		{Name: "p1", Holder: "node-a", Epoch: 1, Held: true},
		{Name: "p2", Holder: "node-b", Epoch: 1, Held: true},
	}
	if d := cmp.Diff(want, got, ignoreTakenAt); d != "" {
		t.Fatalf("Units (-want +got):\n%s", d)
	}
	for _, u := range got {
		if u.TakenAt.Before(start.Add(-time.Minute)) || u.TakenAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("unit %s taken at %v, want about %v", u.Name, u.TakenAt, start)
		}
	}

	// The node lock and another schema's units are other locks.
	acquireLock(t, url, schema)
	_, _, other := openUnitStore(t)
	c := openUnitLocks(t, url, other, "node-c")
	take(t, c, "p0")
	refused(t, b, "p1")
}

// TestUnitStateFencedAfterTakeover: a unit given up and taken by another
// node moves to a higher epoch; the first node's checkpoints of it are
// then refused with ErrFenced and write nothing, while the new holder's
// save, and the first node's of the unit it kept, go through.
func TestUnitStateFencedAfterTakeover(t *testing.T) {
	s, url, schema := openUnitStore(t)
	ctx := t.Context()
	a := openUnitLocks(t, url, schema, "node-a")
	b := openUnitLocks(t, url, schema, "node-b")
	p0 := take(t, a, "p0")
	old := take(t, a, "p1")
	stale := s.UnitState("p1", old)
	if err := stale.SaveState(ctx, "p1", map[string][]byte{"k": []byte("a1"), "gone": []byte("x")}, nil); err != nil {
		t.Fatalf("save under the current epoch: %v", err)
	}
	if err := a.Release(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if got := a.Held(); !slices.Equal(got, []string{"p0"}) {
		t.Fatalf("a.Held() after releasing p1 = %v", got)
	}
	if d := cmp.Diff([]postgres.Unit{
		{Name: "p0", Holder: "node-a", Epoch: p0, Held: true},
		{Name: "p1", Holder: "node-a", Epoch: old, Held: false},
	}, units(t, s), ignoreTakenAt); d != "" {
		t.Fatalf("Units after the release (-want +got):\n%s", d)
	}
	newer := take(t, b, "p1")
	if newer <= old {
		t.Fatalf("B took p1 at epoch %d, want more than A's %d", newer, old)
	}

	err := stale.SaveState(ctx, "p1", map[string][]byte{"k": []byte("a2")}, []string{"gone"})
	if !errors.Is(err, postgres.ErrFenced) || !errors.Is(err, audit.ErrFenced) || audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("save under the old epoch: %v, want EUNAVAILABLE wrapping ErrFenced and audit.ErrFenced", err)
	}
	if msg := audit.ErrorMessage(err); !strings.Contains(msg, "p1") || !strings.Contains(msg, fmt.Sprint(newer)) || !strings.Contains(msg, fmt.Sprint(old)) {
		t.Errorf("message %q should name unit p1 and epochs %d and %d", msg, newer, old)
	}
	var kvs []string
	err = s.ScanState(ctx, "p1", func(k string, v []byte) error { kvs = append(kvs, k+"="+string(v)); return nil })
	if err != nil || strings.Join(kvs, ",") != "gone=x,k=a1" {
		t.Fatalf("after the fenced save: %v, %v; want nothing written", kvs, err)
	}

	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.UnitState("p1", newer).SaveState(ctx, "p1", map[string][]byte{"k": []byte("b1")}, nil); err != nil {
		t.Fatalf("save by the new holder: %v", err)
	}
	if v, err := s.GetState(ctx, "p1", "k"); err != nil || string(v) != "b1" {
		t.Fatalf("GetState(p1, k) = %q, %v, want b1", v, err)
	}
	if err := s.UnitState("p0", p0).SaveState(ctx, "p0", map[string][]byte{"k": []byte("a")}, nil); err != nil {
		t.Fatalf("save of the unit A kept: %v", err)
	}
	// A unit never taken has no epoch to save under.
	if err := s.UnitState("p9", 1).SaveState(ctx, "p9", map[string][]byte{"k": []byte("x")}, nil); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("save of a unit never taken: %v, want ErrFenced", err)
	}
}

// killUnitBackend terminates the backend holding the lock of unit in
// schema (other tests' locks live on the same server) and waits until it
// is gone, its locks with it.
func killUnitBackend(t *testing.T, url, schema, unit string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var pid int32
	if err := conn.QueryRow(ctx, `SELECT a.pid FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
		WHERE a.application_name = 'vigil unit locks' AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
			AND ((k.classid::int8 << 32) | k.objid::int8) = hashtextextended('vigil.unit.' || $1 || '.' || $2, 0)`, schema, unit).Scan(&pid); err != nil {
		t.Fatalf("find the backend holding unit %s: %v", unit, err)
	}
	var gone bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&gone); err != nil || !gone {
		t.Fatalf("terminate backend %d: %v, %v", pid, gone, err)
	}
}

// TestUnitLocksCheckAfterConnectionLoss: when the locks' connection dies,
// Check says which units went with it and forgets them, reconnects, and
// the other node can take them.
func TestUnitLocksCheckAfterConnectionLoss(t *testing.T) {
	s, url, schema := openUnitStore(t)
	ctx := t.Context()
	a := openUnitLocks(t, url, schema, "node-a")
	b := openUnitLocks(t, url, schema, "node-b")
	take(t, a, "p0")
	take(t, a, "installation")
	if err := a.Check(ctx); err != nil {
		t.Fatalf("check of a live connection: %v", err)
	}
	killUnitBackend(t, url, schema, "p0")

	err := a.Check(ctx)
	if err == nil || audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("check after the connection died: %v, want EUNAVAILABLE", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "installation, p0") || !strings.Contains(msg, "lost") {
		t.Fatalf("check's error %q should name the units lost", msg)
	}
	if got := a.Held(); len(got) != 0 {
		t.Fatalf("a.Held() after the loss = %v, want none", got)
	}
	if err := a.Check(ctx); err != nil {
		t.Fatalf("check after reconnecting: %v", err)
	}
	if e := take(t, b, "p0"); e != 2 {
		t.Fatalf("B took p0 at epoch %d, want 2", e)
	}
	take(t, b, "installation")
	for _, u := range units(t, s) {
		if u.Holder != "node-b" || !u.Held {
			t.Errorf("unit %+v, want held by node-b", u)
		}
	}
	// A's new connection works, and took nothing back.
	refused(t, a, "p0")
	take(t, a, "p1")
	if got := a.Held(); !slices.Equal(got, []string{"p1"}) {
		t.Fatalf("a.Held() = %v, want [p1]", got)
	}
}

// TestUnitLocksCloseReleasesAll: after Close, another node takes every
// unit the closed one held, and the closed one takes nothing.
func TestUnitLocksCloseReleasesAll(t *testing.T) {
	_, url, schema := openUnitStore(t)
	ctx := t.Context()
	a := openUnitLocks(t, url, schema, "node-a")
	b := openUnitLocks(t, url, schema, "node-b")
	all := []string{"installation", "p0", "p15"}
	for _, u := range all {
		take(t, a, u)
		refused(t, b, u)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, u := range all {
		take(t, b, u)
	}
	if got := a.Held(); len(got) != 0 {
		t.Fatalf("a.Held() after Close = %v", got)
	}
	if _, _, err := a.TryTake(ctx, "p1"); err == nil {
		t.Fatal("TryTake after Close succeeded")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// TestUnitLocksRefuseBadInput: bad unit names, schemas, holders and URLs
// are EINVALID, and no error quotes the URL; a schema without the units
// table is refused at open.
func TestUnitLocksRefuseBadInput(t *testing.T) {
	s, url, schema := openUnitStore(t)
	ctx := t.Context()
	secretURL := url + " password=hunter2"
	for name, c := range map[string]struct{ url, schema, holder string }{
		"bad url":      {"postgres://u:hunter2@[::1", schema, "a"},
		"bad schema":   {secretURL, "Vigil", "a"},
		"dotted":       {secretURL, "a.b", "a"},
		"no holder":    {secretURL, schema, ""},
		"long holder":  {secretURL, schema, strings.Repeat("h", 256)},
		"NUL holder":   {secretURL, schema, "a\x00b"},
		"UTF-8 holder": {secretURL, schema, "\xff"},
	} {
		l, err := postgres.OpenUnitLocks(ctx, c.url, c.schema, c.holder)
		if err == nil {
			_ = l.Close()
		}
		if audit.ErrorCode(err) != audit.EINVALID || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), url) {
			t.Errorf("%s: %v, want EINVALID quoting no URL", name, err)
		}
	}

	a := openUnitLocks(t, url, schema, "node-a")
	for _, unit := range []string{"", "P0", "p 0", "p.0", "p/0", "p0'", "ü", strings.Repeat("p", 33), strings.Repeat("p", 1000)} {
		check := func(what string, err error) {
			t.Helper()
			if audit.ErrorCode(err) != audit.EINVALID || audit.ErrorField(err) != "unit" || strings.Contains(err.Error(), url) {
				t.Errorf("%s(%q): %v, want EINVALID naming the unit field", what, unit, err)
			}
		}
		_, ok, err := a.TryTake(ctx, unit)
		if ok {
			t.Errorf("TryTake(%q) took it", unit)
		}
		check("TryTake", err)
		check("Release", a.Release(ctx, unit))
		check("UnitState.SaveState", s.UnitState(unit, 1).SaveState(ctx, "ns", map[string][]byte{"k": nil}, nil))
	}
	if got := units(t, s); len(got) != 0 {
		t.Fatalf("Units after refused names = %+v, want none", got)
	}
	take(t, a, strings.Repeat("x", 32))
	if err := s.UnitState("p0", 0).SaveState(ctx, "ns", map[string][]byte{"k": nil}, nil); audit.ErrorCode(err) != audit.EINVALID {
		t.Errorf("save under epoch 0: %v, want EINVALID", err)
	}

	_, bare := pgtest.Schema(t)
	l, err := postgres.OpenUnitLocks(ctx, url, bare, "node-a")
	if err == nil {
		_ = l.Close()
	}
	if audit.ErrorCode(err) != audit.EUNAVAILABLE || !strings.Contains(err.Error(), "vigil migrate") {
		t.Fatalf("open on a schema without the units table: %v, want EUNAVAILABLE asking for `vigil migrate`", err)
	}
}

// TestUnitStateSaveRacesTryTake runs a checkpoint of several statements
// under a unit's old epoch against another node's TryTake of the unit,
// many times. A save that succeeds must have committed before the new
// epoch: a read made just after TryTake returned sees it. A save that
// fails must be ErrFenced and have written nothing.
func TestUnitStateSaveRacesTryTake(t *testing.T) {
	s, url, schema := openUnitStore(t)
	ctx := t.Context()
	a := openUnitLocks(t, url, schema, "node-a")
	b := openUnitLocks(t, url, schema, "node-b")
	const keys = 3000 // three statements of the save
	var saved, fenced int
	for i := range 20 {
		epoch := take(t, a, "p0")
		if err := a.Release(ctx, "p0"); err != nil {
			t.Fatal(err)
		}
		puts := make(map[string][]byte, keys)
		val := []byte(fmt.Sprint(i))
		for k := range keys {
			puts[fmt.Sprintf("k%05d", k)] = val
		}
		var (
			wg               sync.WaitGroup
			start            = make(chan struct{})
			saveErr, takeErr error
			afterTake        []byte
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			saveErr = s.UnitState("p0", epoch).SaveState(ctx, "race", puts, nil)
		}()
		go func() {
			defer wg.Done()
			<-start
			var ok bool
			if _, ok, takeErr = b.TryTake(ctx, "p0"); takeErr == nil && !ok {
				takeErr = errors.New("p0 was held")
			}
			if takeErr == nil {
				afterTake, takeErr = s.GetState(ctx, "race", fmt.Sprintf("k%05d", keys-1))
			}
		}()
		close(start)
		wg.Wait()
		if takeErr != nil && audit.ErrorCode(takeErr) != audit.ENOTFOUND {
			t.Fatal(takeErr)
		}
		switch {
		case saveErr == nil:
			saved++
			if string(afterTake) != string(val) {
				t.Fatalf("round %d: the save succeeded but a read after the take saw %q, not %q: it committed after the new epoch", i, afterTake, val)
			}
		case errors.Is(saveErr, postgres.ErrFenced):
			fenced++
			if v, err := s.GetState(ctx, "race", "k00000"); err == nil && string(v) == string(val) {
				t.Fatalf("round %d: a fenced save wrote", i)
			}
		default:
			t.Fatalf("round %d: save: %v", i, saveErr)
		}
		if err := b.Release(ctx, "p0"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d saves committed before the new epoch, %d fenced", saved, fenced)
}
