package cli_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
)

func sqliteFile(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s changed no row", q)
	}
}

// TestVerifyCommands drives tamper evidence through the command line: a
// clean history verifies, an export of one day is checked offline against
// its proof and the published key, an erasure keeps it verifying, and
// rows altered, deleted, reordered or inserted in the store's files are
// each caught by vigil verify, which names the first broken link.
func TestVerifyCommands(t *testing.T) {
	var dir string
	env := startServer(t, func(c *config.Config) {
		dir, c.Integrity.CheckpointInterval, c.Detect.Enabled = c.Storage.SQLite.Dir, time.Second, false
	})
	ctx := t.Context()
	op, err := client.New("http://"+env["VIGIL_SERVER_ADDR"], client.WithAPIKey(env["VIGIL_API_KEY"]))
	if err != nil {
		t.Fatal(err)
	}
	// Six days, three events each: day 0 stays clean, the others are tampered with.
	first := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -7)
	day := func(d int) string { return first.AddDate(0, 0, d).Format("2006-01-02") }
	var evs []client.Event
	for d := range 6 {
		for i := range 3 {
			evs = append(evs, client.Event{ID: fmt.Sprintf("d%d-e%d", d, i), Tenant: "acme", Action: "app.report.viewed",
				Time: first.AddDate(0, 0, d).Add(time.Duration(9*60+i) * time.Minute), Actor: client.Actor{ID: "alice", Email: "alice@example.com"},
				Context: client.Context{IP: "198.51.100.7", UserAgent: "Mozilla/5.0 Firefox/128.0"}, Metadata: map[string]any{"i": i}})
		}
	}
	if _, err := op.Send(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	from, to := day(0), day(5)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := run(t, env, "", "verify", "--tenant", "acme", "--from", from, "--to", to)
		if r.code == 0 && strings.Contains(r.stdout, "OK: 6 days, 18 events") && !strings.Contains(r.stdout, "UNSIGNED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify never came clean and signed: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The published key, the proof of day 0 and its export, checked offline.
	r := run(t, env, "", "verify", "keys", "--format", "json")
	var keys []client.IntegrityKey
	if err := json.Unmarshal([]byte(r.stdout), &keys); r.code != 0 || err != nil || len(keys) != 1 || !keys[0].Current {
		t.Fatalf("verify keys: %+v %v", r, err)
	}
	tmp := t.TempDir()
	proof, export := filepath.Join(tmp, "proof.json"), filepath.Join(tmp, "day.ndjson")
	r = run(t, env, "", "verify", "proof", day(0), "--tenant", "acme")
	if r.code != 0 || os.WriteFile(proof, []byte(r.stdout), 0o600) != nil {
		t.Fatalf("verify proof: %+v", r)
	}
	q := fmt.Sprintf("time:>=%sT00:00:00Z time:<%sT00:00:00Z", day(0), day(1))
	if r = run(t, env, "", "export", q, "--tenant", "acme", "--format", "ndjson", "--output", export, "--quiet"); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	r = run(t, nil, "", "verify", "export", "--proof", proof, "--key", keys[0].Key, export)
	if r.code != 0 || !strings.Contains(r.stdout, "OK: 1 days, 3 events") {
		t.Fatalf("verify export: %+v", r)
	}
	b, _ := os.ReadFile(export)
	edited := filepath.Join(tmp, "edited.ndjson")
	os.WriteFile(edited, []byte(strings.Replace(string(b), "198.51.100.7", "198.51.100.8", 1)), 0o600)
	if r = run(t, nil, "", "verify", "export", "--proof", proof, "--key", keys[0].Key, edited); r.code != 1 || !strings.Contains(r.stdout, "BROKEN checkpoint_mismatch") {
		t.Fatalf("verify export of an edited export: %+v", r)
	}
	if r = run(t, nil, "", "verify", "export", "--proof", proof, "--key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", export); r.code != 1 || !strings.Contains(r.stdout, "BROKEN bad_signature") {
		t.Fatalf("verify export with another key: %+v", r)
	}

	// Erasure: the values go, verification still passes.
	r = run(t, env, "", "erase", "--tenant", "acme", "--actor", "alice", "--fields", "context.ip,actor.email")
	if r.code != 0 || !strings.Contains(r.stdout, "36 values erased in 18 events") {
		t.Fatalf("erase: %+v", r)
	}
	if r = run(t, env, "", "verify", "--tenant", "acme", "--from", from, "--to", to); r.code != 0 || !strings.Contains(r.stdout, "OK: 6 days, 18 events") {
		t.Fatalf("verify after the erasure: %+v", r)
	}
	if r = run(t, env, "", "erase", "--tenant", "acme", "--actor", "alice", "--fields", "actor.id"); r.code == 0 || !strings.Contains(r.stderr, "fields[0]") {
		t.Fatalf("erase of actor.id: %+v", r)
	}

	// Tampering, one kind per day, each named by vigil verify.
	part := func(d int) *sql.DB {
		return sqliteFile(t, filepath.Join(dir, "events", first.AddDate(0, 0, d).Format("2006010215")+"-24h.db"))
	}
	meta := sqliteFile(t, filepath.Join(dir, "meta.db"))
	mustExec(t, part(1), `UPDATE events SET ts = ts + 1 WHERE id = 'd1-e1'`)
	mustExec(t, part(2), `DELETE FROM events WHERE id = 'd2-e2'`)
	// Links 1 and 2 of day 3 trade places in its block (ids of 7 bytes:
	// tag, length, text; leaves of 32 after a form byte).
	mustExec(t, meta, `UPDATE chain_blocks SET ids = CAST(substr(ids, 8, 7) || substr(ids, 1, 7) || substr(ids, 15) AS BLOB),
		leaves = CAST(substr(leaves, 1, 1) || substr(leaves, 34, 32) || substr(leaves, 2, 32) || substr(leaves, 66) AS BLOB)
		WHERE chain = (SELECT id FROM chains WHERE tenant = 'acme' AND day = ?) AND first_seq = 1`, day(3))
	mustExec(t, part(4), `INSERT INTO events (t, ts, id, idh, act, ah, ip, sh, gh, body)
		SELECT t, ts + 1000, 'forged', idh + 1, act, ah, ip, sh, gh, body FROM events WHERE id = 'd4-e0'`)
	mustExec(t, meta, `UPDATE integrity_statements SET sig = zeroblob(64) WHERE tenant = 'acme' AND kind = 'checkpoint' AND key = ?`, day(5))
	for _, c := range []struct {
		day  int
		want string
	}{
		{0, ""},
		{1, `BROKEN altered_event: tenant acme, day ` + day(1) + `, link 2, event d1-e1:`},
		{2, `BROKEN deleted_event: tenant acme, day ` + day(2) + `, link 3, event d2-e2:`},
		{3, `BROKEN broken_link: tenant acme, day ` + day(3) + `, link 1, event d3-e1:`},
		{4, `BROKEN inserted_event: tenant acme, day ` + day(4) + `, event forged:`},
		{5, `BROKEN bad_signature: tenant acme, day ` + day(5) + `: checkpoint signature does not verify`},
	} {
		r := run(t, env, "", "verify", "--tenant", "acme", "--from", day(c.day), "--to", day(c.day))
		if c.want == "" {
			if r.code != 0 || !strings.Contains(r.stdout, "OK: 1 days, 3 events") {
				t.Errorf("day %d: %+v", c.day, r)
			}
			continue
		}
		if r.code != 1 || !strings.HasPrefix(r.stdout, c.want) || !strings.Contains(r.stderr, "chain is broken") {
			t.Errorf("day %d: want %q, got %+v", c.day, c.want, r)
		}
	}
	// Over the whole range, the first break is the earliest day's.
	if r = run(t, env, "", "verify", "--tenant", "acme", "--format", "json"); r.code != 1 ||
		!regexp.MustCompile(`"reason": "altered_event"`).MatchString(r.stdout) {
		t.Fatalf("verify of every day: %+v", r)
	}
	if r = run(t, env, "", "verify", "extra"); r.code != 2 {
		t.Fatalf("a positional argument was accepted: %+v", r)
	}
}
