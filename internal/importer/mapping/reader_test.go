package mapping_test

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/importer/mapping"
)

func readAll(t *testing.T, r *mapping.Reader) []importer.Decoded {
	t.Helper()
	var out []importer.Decoded
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

// TestReaderRBA reads the RBA sample file through a Reader: 200 events,
// each with the file line of its row.
func TestReaderRBA(t *testing.T) {
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
	r, err := m.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	ds := readAll(t, r)
	if len(ds) != 200 {
		t.Fatalf("%d records, want 200", len(ds))
	}
	for i, d := range ds {
		if d.Err != nil || d.Event == nil || d.Line != i+2 || d.Size == 0 {
			t.Fatalf("record %d: line %d, size %d, %v", i, d.Line, d.Size, d.Err)
		}
	}
}

// TestReaderCSVProblems: a row with the wrong number of fields, a row
// over the record limit and a row the mapping cannot use are each one
// rejected record with its line, and the rows around them are read; a
// header without a mapped column, or no header, fails the file.
func TestReaderCSVProblems(t *testing.T) {
	m, err := mapping.Parse([]byte("name: t\nformat: csv\ntime: {from: ts}\naction: {value: auth.login.success}\nfields:\n  actor.id: {from: user}\n  context.ip: {from: ip}\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := "ts,user,ip\n" +
		"2024-01-01T00:00:00Z,alice,192.0.2.1\n" +
		"2024-01-01T00:00:01Z,bob\n" +
		"2024-01-01T00:00:02Z,\"multi\nline\",192.0.2.2\n" +
		"2024-01-01T00:00:03Z," + strings.Repeat("x", importer.MaxRecordBytes) + ",192.0.2.3\n" +
		"yesterday,carol,192.0.2.4\n" +
		"2024-01-01T00:00:05Z,dave,192.0.2.5\n"
	r, err := m.NewReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	ds := readAll(t, r)
	want := []struct {
		line  int
		code  string
		field string
		msg   string
	}{
		{2, "", "", ""},
		{3, audit.EINVALID, "", "the row has 2 fields, the header 3"},
		{4, "", "", ""},
		{6, audit.ETOOLARGE, "", "over 256 KiB"},
		{7, audit.EINVALID, "ts", "ts (time)"},
		{8, "", "", ""},
	}
	if len(ds) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(ds), len(want), ds)
	}
	for i, w := range want {
		d := ds[i]
		if d.Line != w.line {
			t.Errorf("record %d: line %d, want %d", i, d.Line, w.line)
		}
		if w.code == "" {
			if d.Err != nil || d.Event == nil {
				t.Errorf("line %d: %v", d.Line, d.Err)
			}
			continue
		}
		if audit.ErrorCode(d.Err) != w.code || audit.ErrorField(d.Err) != w.field || !strings.Contains(audit.ErrorMessage(d.Err), w.msg) {
			t.Errorf("line %d: %s %q %q, want %s %q containing %q", d.Line, audit.ErrorCode(d.Err), audit.ErrorField(d.Err), audit.ErrorMessage(d.Err), w.code, w.field, w.msg)
		}
	}
	if !strings.HasPrefix(ds[2].Event.Actor.ID, "multi") {
		t.Errorf("quoted field across lines: %q", ds[2].Event.Actor.ID)
	}

	if _, err := m.NewReader(strings.NewReader("ts,who,ip\n")); audit.ErrorField(err) != "fields.actor.id.from" {
		t.Errorf("missing column: %v", err)
	}
	if _, err := m.NewReader(strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "no header row") {
		t.Errorf("empty file: %v", err)
	}
}

// TestReaderNDJSON reads NDJSON records with their lines; a line that is
// not JSON is one rejected record.
func TestReaderNDJSON(t *testing.T) {
	m, err := mapping.Parse([]byte("name: t\nformat: ndjson\ntime: {from: ts}\naction: {value: auth.login.success}\nfields:\n  actor.id: {from: user.id}\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := `{"ts":"2024-01-01T00:00:00Z","user":{"id":"alice"}}` + "\n\n" + "not json\n" + `{"ts":"2024-01-01T00:00:01Z","user":{"id":"bob"}}` + "\n"
	r, err := m.NewReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	ds := readAll(t, r)
	if len(ds) != 3 || ds[0].Line != 1 || ds[0].Event == nil || ds[1].Line != 3 || ds[1].Err == nil || ds[2].Line != 4 || ds[2].Event.Actor.ID != "bob" {
		t.Fatalf("records %+v", ds)
	}
}

// TestBadMappingYAML: a YAML error names the path at fault, or the file
// ("mapping") when it has none.
func TestBadMappingYAML(t *testing.T) {
	check := func(in, field, msg string) {
		t.Helper()
		_, err := mapping.Parse([]byte(in))
		if audit.ErrorCode(err) != audit.EINVALID || audit.ErrorField(err) != field || !strings.Contains(audit.ErrorMessage(err), msg) {
			t.Errorf("%q: %s %q %q, want field %q and %q", in, audit.ErrorCode(err), audit.ErrorField(err), audit.ErrorMessage(err), field, msg)
		}
	}
	base := "name: t\nformat: csv\ntime: {from: ts}\n"
	check(base+"action: {value: auth.login.success}\ntimee: 1\n", "timee", "timee is not a mapping field (line 5)")
	check(base+"action: {value: auth.login.success}\nfields:\n  actor.id:\n    from: a\n    mapp: {}\n", "fields.actor.id.mapp", "mapp is not a mapping field")
	check(base+"action: {value: auth.login.success, only: yes}\n", "action.only", "cannot unmarshal")
	check("0", "mapping", "cannot unmarshal")
	check("name: [", "mapping", "mapping file:")
	check(strings.Repeat("#", mapping.MaxFileBytes+1), "mapping", "over 64 KiB")
}

// FuzzParse parses arbitrary mapping files: a mapping, or an EINVALID
// error whose every problem names the YAML path at fault; a mapping that
// parses reads a CSV file without panicking.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../../examples/import/rba-dataset.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("name: t\nformat: ndjson\ntime: {from: ts}\naction: {from: kind, map: {ok: auth.login.success, '*': app.other}}\nfields:\n  actor.id: {from: user.id}\n  context.ip: {from: ip}\n"))
	f.Add([]byte("name: x y\nformat: xml\naction: {}\nfields:\n  actor.idd: {from: a}\n"))
	f.Add([]byte("name: t\nformat: csv\ntime: {from: ts, layout: unix_ms, zone: Europe/Paris}\nid: {from: id}\naction: {value: auth.login.success, only: [auth.login.success]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mapping.Parse(b)
		if err != nil {
			if audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("error code %s: %v", audit.ErrorCode(err), err)
			}
			for _, p := range audit.ErrorProblems(err) {
				if p.Field == "" {
					t.Errorf("problem %q names no field", p.Message)
				}
			}
			return
		}
		if m.Format() != mapping.FormatCSV && m.Format() != mapping.FormatNDJSON {
			t.Fatalf("format %q accepted", m.Format())
		}
		in := "ts,kind,id,user.id,ip\n1700000000000,ok,1,u,192.0.2.1\n"
		if m.Format() == mapping.FormatNDJSON {
			in = `{"ts":"2024-01-01T00:00:00Z","kind":"ok","id":"1","user":{"id":"u"},"ip":"192.0.2.1"}` + "\n"
		}
		r, err := m.NewReader(strings.NewReader(in))
		if err != nil {
			return
		}
		for {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}
