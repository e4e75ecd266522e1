package postgres_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// openNodes opens a migrated store on a fresh schema whose clock is *now.
func openNodes(t *testing.T, now *time.Time) (*postgres.Store, string, string) {
	t.Helper()
	url, schema := pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true,
		Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, url, schema
}

func nodeNames(t *testing.T, s *postgres.Store) string {
	t.Helper()
	ns, err := s.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range ns {
		names = append(names, n.Name)
	}
	return strings.Join(names, ",")
}

func heartbeat(t *testing.T, s *postgres.Store, n postgres.Node) {
	t.Helper()
	if err := s.Heartbeat(t.Context(), n); err != nil {
		t.Fatalf("heartbeat of %s: %v", n.Name, err)
	}
}

// TestHeartbeatUpsertsAndLists: a heartbeat replaces its node's row;
// Nodes lists active nodes first, then by name in byte order, times exact.
func TestHeartbeatUpsertsAndLists(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	s, _, _ := openNodes(t, &now)
	started := now.Add(-time.Hour)
	first := postgres.Node{Name: "a", Address: "10.0.0.5:8080", Role: postgres.RoleActive, Version: "1.0.0",
		Epoch: 3, Started: started, Seen: now.Add(-time.Second), Lag: 12}
	heartbeat(t, s, first)
	heartbeat(t, s, postgres.Node{Name: "b", Role: postgres.RoleStandby, Lag: -1, Started: started})
	got, err := s.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []postgres.Node{first, {Name: "b", Role: postgres.RoleStandby, Lag: -1, Started: started, Seen: now}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("nodes (-want +got):\n%s", d)
	}

	// a fails over to b.
	first.Role, first.Lag, first.Seen = postgres.RoleStandby, -1, now
	heartbeat(t, s, first)
	heartbeat(t, s, postgres.Node{Name: "b", Role: postgres.RoleActive, Epoch: 4, Started: started, Seen: now})
	for _, name := range []string{"c", "B", "é", "_"} {
		heartbeat(t, s, postgres.Node{Name: name, Role: postgres.RoleStandby, Lag: -1})
	}
	if got, want := nodeNames(t, s), "b,B,_,a,c,é"; got != want {
		t.Fatalf("order = %s, want %s", got, want)
	}
	got, err = s.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got[3] != first {
		t.Fatalf("a after its second heartbeat = %+v, want %+v", got[3], first)
	}
}

// TestHeartbeatExpiresOldNodes: a heartbeat deletes the rows of nodes not
// seen for a day, by the store's clock.
func TestHeartbeatExpiresOldNodes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, _, _ := openNodes(t, &now)
	heartbeat(t, s, postgres.Node{Name: "old", Role: postgres.RoleActive, Seen: now.Add(-postgres.NodeExpiry - time.Second), Lag: -1})
	if got := nodeNames(t, s); got != "old" {
		t.Fatalf("nodes = %s, want old listed until the next heartbeat", got)
	}
	heartbeat(t, s, postgres.Node{Name: "recent", Role: postgres.RoleStandby, Seen: now.Add(-postgres.NodeExpiry + time.Second), Lag: -1})
	heartbeat(t, s, postgres.Node{Name: "new", Role: postgres.RoleStandby, Lag: -1})
	if got := nodeNames(t, s); got != "new,recent" {
		t.Fatalf("nodes = %s, want old expired", got)
	}
	now = now.Add(2 * time.Second)
	heartbeat(t, s, postgres.Node{Name: "new", Role: postgres.RoleStandby, Lag: -1})
	if got := nodeNames(t, s); got != "new" {
		t.Fatalf("nodes = %s, want recent expired", got)
	}
}

func TestHeartbeatValidates(t *testing.T) {
	now := time.Now()
	s, _, _ := openNodes(t, &now)
	ok := postgres.Node{Name: "n", Address: "10.0.0.5:8080", Role: postgres.RoleStandby, Version: "1", Lag: -1}
	long := strings.Repeat("x", 255)
	for _, c := range []struct {
		name  string
		edit  func(*postgres.Node)
		field string // "" when valid
	}{
		{"valid", func(*postgres.Node) {}, ""},
		{"255 bytes", func(n *postgres.Node) { n.Name, n.Address, n.Version = long, long, long }, ""},
		{"no name", func(n *postgres.Node) { n.Name = "" }, "name"},
		{"long name", func(n *postgres.Node) { n.Name = long + "y" }, "name"},
		{"name not utf-8", func(n *postgres.Node) { n.Name = "a\xffb" }, "name"},
		{"name with NUL", func(n *postgres.Node) { n.Name = "a\x00b" }, "name"},
		{"long address", func(n *postgres.Node) { n.Address = long + "é" }, "address"},
		{"address not utf-8", func(n *postgres.Node) { n.Address = "\xc3" }, "address"},
		{"long version", func(n *postgres.Node) { n.Version = long + "1" }, "version"},
		{"no role", func(n *postgres.Node) { n.Role = "" }, "role"},
		{"other role", func(n *postgres.Node) { n.Role = "leader" }, "role"},
		{"role case", func(n *postgres.Node) { n.Role = "Active" }, "role"},
		{"negative epoch", func(n *postgres.Node) { n.Epoch = -1 }, "epoch"},
		{"lag below -1", func(n *postgres.Node) { n.Lag = -2 }, "lag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := ok
			c.edit(&n)
			err := s.Heartbeat(t.Context(), n)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if audit.ErrorCode(err) != audit.EINVALID || audit.ErrorField(err) != c.field {
				t.Fatalf("%v (field %q), want EINVALID naming %s", err, audit.ErrorField(err), c.field)
			}
		})
	}
	err := s.Heartbeat(t.Context(), postgres.Node{Address: "\xff", Role: "x"})
	if ps := audit.ErrorProblems(err); len(ps) != 3 {
		t.Fatalf("problems = %+v, want name, address and role", ps)
	}
	if got := nodeNames(t, s); got != "n,"+long {
		t.Fatalf("nodes = %s, want only the valid ones", got)
	}
}

// TestHeartbeatBoundsNodes: with MaxNodes rows a new name is refused
// (ETOOLARGE), even by concurrent heartbeats, while known names still
// beat and expired rows make room.
func TestHeartbeatBoundsNodes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, url, schema := openNodes(t, &now)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "nodes"}.Sanitize()+`
		(name, address, role, epoch, version, started_ns, seen_ns, lag)
		SELECT 'n' || lpad(i::text, 4, '0'), '', 'standby', 0, '', 0, $1, -1 FROM generate_series(1, $2 - 1) AS i`,
		now.UnixNano(), postgres.MaxNodes); err != nil {
		t.Fatal(err)
	}
	// One free place, five new names racing for it.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for _, name := range []string{"r1", "r2", "r3", "r4", "r5"} {
		wg.Go(func() { errs <- s.Heartbeat(ctx, postgres.Node{Name: name, Role: postgres.RoleStandby, Lag: -1}) })
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case audit.ErrorCode(err) != audit.ETOOLARGE:
			t.Fatalf("a new name beyond the bound: %v, want ETOOLARGE", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d new names recorded for one free place", won)
	}
	if err := s.Heartbeat(ctx, postgres.Node{Name: "late", Role: postgres.RoleActive, Lag: -1}); audit.ErrorCode(err) != audit.ETOOLARGE {
		t.Fatalf("a new name at the bound: %v, want ETOOLARGE", err)
	}
	heartbeat(t, s, postgres.Node{Name: "n0001", Role: postgres.RoleActive, Lag: 0})
	ns, err := s.Nodes(ctx)
	if err != nil || len(ns) != postgres.MaxNodes || ns[0].Name != "n0001" {
		t.Fatalf("nodes: %d, %v; want %d with n0001 first", len(ns), err, postgres.MaxNodes)
	}
	if _, err := conn.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "nodes"}.Sanitize()+` SET seen_ns = $1 WHERE name = 'n0002'`,
		now.Add(-postgres.NodeExpiry-time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if err := s.Heartbeat(ctx, postgres.Node{Name: "late", Role: postgres.RoleStandby, Lag: -1}); err != nil {
		t.Fatalf("a new name once a row expired: %v", err)
	}
}
