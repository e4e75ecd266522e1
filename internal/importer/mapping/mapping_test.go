package mapping_test

import (
	"encoding/csv"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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

// rbaMapping returns the example mapping of the RBA dataset, with the
// header of its sample read.
func rbaMapping(t testing.TB) (*mapping.Mapping, [][]string) {
	t.Helper()
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
	return m, rows[1:]
}

// TestRBATimes reads the dataset's timestamps with three, fewer or no
// millisecond digits, and refuses a malformed one naming the column.
func TestRBATimes(t *testing.T) {
	m, rows := rbaMapping(t)
	row := slices.Clone(rows[0]) // Login Timestamp is column 1
	check := func(in, want string) {
		t.Helper()
		row[1] = in
		ev, err := m.DecodeRow(row)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := ev.Time.Format(time.RFC3339Nano); got != want {
			t.Errorf("%q read as %s, want %s", in, got, want)
		}
	}
	check("2020-02-03 12:43:30.772", "2020-02-03T12:43:30.772Z")
	check("2020-02-03 12:43:30.7", "2020-02-03T12:43:30.7Z")
	check("2020-02-03 12:43:30", "2020-02-03T12:43:30Z")
	row[1] = "03.02.2020 12:43"
	_, err := m.DecodeRow(row)
	if ps := audit.ErrorProblems(err); len(ps) != 1 || ps[0].Field != "Login Timestamp" {
		t.Errorf("malformed time: %v, want one problem on Login Timestamp", err)
	}
}

// FuzzDecodeRow decodes arbitrary CSV rows with the RBA mapping: an event
// that is valid, or an error that names the columns at fault.
func FuzzDecodeRow(f *testing.F) {
	m, rows := rbaMapping(f)
	for _, r := range rows[:5] {
		var b strings.Builder
		w := csv.NewWriter(&b)
		_ = w.Write(r)
		w.Flush()
		f.Add(b.String())
	}
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > 16<<10 {
			return
		}
		row, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil {
			return
		}
		ev, err := m.DecodeRow(row)
		if err != nil {
			importertest.CheckError(t, []byte(line), err)
			for _, p := range audit.ErrorProblems(err) {
				if p.Field == "" {
					t.Errorf("problem %q names no column", p.Message)
				}
			}
			return
		}
		importertest.Check(t, "csv:rba", ev, []byte(ev.MetaString("raw")))
	})
}
