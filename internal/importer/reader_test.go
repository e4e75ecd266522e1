package importer_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

type rec struct {
	line int
	raw  string
	err  string
}

func readAll(t testing.TB, in string) ([]rec, error) {
	r := importer.NewReader(strings.NewReader(in))
	var out []rec
	for {
		x, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		got := rec{line: x.Line, raw: string(x.Raw)}
		if x.Err != nil {
			got.err = audit.ErrorCode(x.Err)
		}
		out = append(out, got)
		if len(out) > 100000 {
			t.Fatal("reader does not end")
		}
	}
}

func TestReader(t *testing.T) {
	long := `{"a":"` + strings.Repeat("x", importer.MaxRecordBytes) + `"}`
	for _, tc := range []struct {
		name, in string
		want     []rec
		fatal    string
	}{
		{"ndjson with blank lines", "{\"a\":1}\n\n  {\"b\":2}  \r\n{\"c\":3}", []rec{{1, `{"a":1}`, ""}, {3, `{"b":2}`, ""}, {4, `{"c":3}`, ""}}, ""},
		{"a bad line is its own record", "{\"a\":1}\n{\"b\":\n{\"c\":3}\n", []rec{{1, `{"a":1}`, ""}, {2, `{"b":`, ""}, {3, `{"c":3}`, ""}}, ""},
		{"array over lines", "[\n {\"a\":1},\n {\"b\":\"]},{\\\"\"},\n\n {\"c\":\n  3}\n]\n", []rec{{2, `{"a":1}`, ""}, {3, `{"b":"]},{\""}`, ""}, {5, "{\"c\":\n  3}", ""}}, ""},
		{"empty array", " [ ] ", nil, ""},
		{"empty input", " \n ", nil, ""},
		{"array of literals", "[1, \"x\", null]", []rec{{1, "1", ""}, {1, `"x"`, ""}, {1, "null", ""}}, ""},
		{"unclosed array", "[{\"a\":1},\n{\"b\":2}", []rec{{1, `{"a":1}`, ""}, {2, `{"b":2}`, ""}}, "line 2: the JSON array is not closed"},
		{"missing comma", "[{\"a\":1}\n{\"b\":2}]", []rec{{1, `{"a":1}`, ""}}, "line 2: expected ',' or ']'"},
		{"data after the array", "[{}]\n{}", []rec{{1, `{}`, ""}}, "line 2: unexpected data after the JSON array"},
		{"too long a line", "{}\n" + long + "\n{}", []rec{{1, `{}`, ""}, {2, "", audit.ETOOLARGE}, {3, `{}`, ""}}, ""},
		{"too long an element", "[{}," + long + ",\n{}]", []rec{{1, `{}`, ""}, {1, "", audit.ETOOLARGE}, {2, `{}`, ""}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.in)
			if tc.fatal == "" && err != nil || tc.fatal != "" && (err == nil || !strings.Contains(err.Error(), tc.fatal)) {
				t.Errorf("error %v, want %q", err, tc.fatal)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("record %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// FuzzReader: the reader ends on any input, every record it returns is
// within MaxRecordBytes, and line numbers never go back.
func FuzzReader(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n{\"b\":2}", "[{\"a\":\"]\"},\n2]", "[", "[{}{}]", "{\"a\":\"\\\"\"}\n", " [ [[]] , {} ] "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, _ := readAll(t, string(in))
		last := 0
		for _, r := range got {
			if r.line < last || r.line < 1 {
				t.Fatalf("line %d after %d", r.line, last)
			}
			last = r.line
			if len(r.raw) > importer.MaxRecordBytes {
				t.Fatalf("record of %d bytes", len(r.raw))
			}
		}
	})
}

func TestAction(t *testing.T) {
	for _, tc := range [][]string{
		{"okta", "user.session.start", "okta.user.session.start"},
		{"aws", "iam|CreateAccessKey", "aws.iam.create_access_key"},
		{"gws", "login|2sv_enroll", "gws.login.x2sv_enroll"},
		{"github", "Weird Action!.", "github.weird_action"},
		{"auth0", "", "auth0.unknown"},
	} {
		got := importer.Action(tc[0], strings.Split(tc[1], "|")...)
		if got != tc[2] || !audit.ValidAction(got) {
			t.Errorf("Action(%s, %s) = %s, want %s", tc[0], tc[1], got, tc[2])
		}
	}
	if a := importer.Action("okta", strings.Repeat("segment.", 40)); len(a) > audit.MaxActionBytes || !audit.ValidAction(a) {
		t.Errorf("long action %q", a)
	}
}

func TestID(t *testing.T) {
	if got := importer.ID("okta", "aac560bd-f125", nil); got != "okta:aac560bd-f125" {
		t.Errorf("got %s", got)
	}
	a, b := importer.ID("github", "KCYt/igpn==", nil), importer.ID("github", "KCYt/igpn==", nil)
	if a != b || !audit.ValidEventID(a) {
		t.Errorf("hashed ids %s %s", a, b)
	}
	if c := importer.ID("gws", "", []byte(`{"x":1}`)); c == importer.ID("gws", "", []byte(`{"x":2}`)) || !audit.ValidEventID(c) {
		t.Errorf("record hashes collide: %s", c)
	}
}

func TestTime(t *testing.T) {
	for in, want := range map[string]string{
		"2024-04-02T19:17:37.621Z":      "2024-04-02T19:17:37.621Z",
		"2024-04-02 19:17:37.621000000": "2024-04-02T19:17:37.621Z",
		"2024-04-02T21:17:37+02:00":     "2024-04-02T19:17:37Z",
		"1714550400000":                 "2024-05-01T08:00:00Z",
	} {
		got, ok := importer.Time(in)
		if !ok || got.Format("2006-01-02T15:04:05.999Z07:00") != want {
			t.Errorf("Time(%q) = %s %v, want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"yesterday", "700000000000000"} { // the number is past year 9999
		if got, ok := importer.Time(in); ok {
			t.Errorf("Time(%q) = %s, want no timestamp", in, got)
		}
	}
}

// TestRawIsBounded: the raw copy of a big record is cut so the metadata
// stays within audit.MaxMetadataBytes, even when every byte needs escaping.
func TestRawIsBounded(t *testing.T) {
	for _, raw := range []string{strings.Repeat(`"`, 20000), strings.Repeat("<", 20000), strings.Repeat("é", 9000)} {
		ev := &audit.Event{Action: "okta.x.y"}
		importer.Finish(ev, "okta", "okta.x.y", []byte(raw))
		r, _ := ev.Metadata["raw"].(string)
		if ev.Metadata["raw_truncated"] != true || r == "" || !strings.HasPrefix(raw, r) {
			t.Errorf("raw of %d bytes kept as %d bytes, truncated=%v", len(raw), len(r), ev.Metadata["raw_truncated"])
		}
	}
}
