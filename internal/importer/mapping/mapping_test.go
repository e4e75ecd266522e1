package mapping_test

import (
	"encoding/csv"
	"os"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/importertest"
	"github.com/vigilhq/vigil/internal/importer/mapping"
)

// TestRBADataset maps the RBA login dataset sample with the example
// mapping file: every row becomes a complete catalog login event.
func TestRBADataset(t *testing.T) {
	b, err := os.ReadFile("../../../examples/import/rba-dataset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/rba-dataset-head-200.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Header(rows[0]); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const catchAll = "-4324475583306591935" // the dataset's bucket of logins to accounts that do not exist
	for i, row := range rows[1:] {
		ev, err := m.DecodeRow(row)
		if err != nil {
			t.Fatalf("row %d: %v", i+2, err)
		}
		importertest.Check(t, "csv:rba", ev, []byte(ev.MetaString("raw")))
		counts[ev.Action]++
		if ev.Action != audit.ActionLoginFailure {
			continue
		}
		want := "invalid_password"
		if ev.Actor.ID == catchAll {
			want = "unknown_user"
		}
		if ev.Reason != want {
			t.Errorf("row %d: failure of %s has reason %q, want %q", i+2, ev.Actor.ID, ev.Reason, want)
		}
		counts[ev.Reason]++
	}
	if counts["unknown_user"] == 0 || counts["invalid_password"] == 0 {
		t.Errorf("failure reasons %v, want both unknown_user and invalid_password", counts)
	}
	if counts[audit.ActionLoginSuccess] == 0 || counts[audit.ActionLoginFailure] == 0 || counts[audit.ActionLoginSuccess]+counts[audit.ActionLoginFailure] != 200 {
		t.Errorf("actions %v", counts)
	}
}

func TestBadMapping(t *testing.T) {
	_, err := mapping.Parse([]byte("name: x y\nformat: xml\naction: {}\nfields:\n  actor.idd: {from: a}\n"))
	ps := audit.ErrorProblems(err)
	want := []string{"name", "format", "time.from", "action", "fields.actor.idd"}
	if len(ps) != len(want) {
		t.Fatalf("problems %v, want fields %v", ps, want)
	}
	for i, f := range want {
		if ps[i].Field != f {
			t.Errorf("problem %d on %s, want %s", i, ps[i].Field, f)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	m, err := mapping.Parse([]byte("name: t\nformat: ndjson\ntime: {from: ts}\naction: {from: kind, map: {ok: auth.login.success, '*': app.other}}\nfields:\n  actor.id: {from: user.id}\n  context.ip: {from: ip}\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"ts":"2024-01-01T00:00:00Z","kind":"x","user":{"id":"u"},"ip":"1.2.3.4"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			return
		}
		ev, err := m.DecodeJSON(raw)
		if err != nil {
			importertest.CheckError(t, raw, err)
			return
		}
		importertest.Check(t, "ndjson:t", ev, raw)
	})
}
