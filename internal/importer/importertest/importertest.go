// Package importertest holds the checks every importer's tests share: the
// invariants of an imported event, the golden listing of a vendor's test
// records, and a fuzz body. Imported by tests only.
package importertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

var update = flag.Bool("update", false, "rewrite the golden listings of imported test records")

// Records reads an NDJSON file of vendor records, one per line.
func Records(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, importer.MaxRecordBytes)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, bytes.Clone(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Check asserts what every imported event must be: an id that is valid
// and derived from the record (so a re-import dedupes), an action that is
// well formed and outside the reserved and catalog namespaces unless it
// is a catalog action with every required field, an event that passes
// ingestion's own validation at its own time, and metadata within the
// limits a client's event is held to, with the raw record in it.
func Check(t testing.TB, format string, ev *audit.Event, raw []byte) {
	t.Helper()
	if !audit.ValidEventID(ev.ID) || !strings.HasPrefix(ev.ID, format+":") {
		t.Errorf("id %q is not a valid event id in the %s: namespace", ev.ID, format)
	}
	if !audit.ValidAction(ev.Action) {
		t.Errorf("action %q is not well formed", ev.Action)
	}
	if m := importer.Missing(ev); len(m) > 0 {
		t.Errorf("%s lacks %v", ev.Action, m)
	}
	e := *ev
	e.Tenant = "acme"
	e.Normalize(ev.Time)
	if err := e.Validate(ev.Time); err != nil {
		for _, p := range audit.ErrorProblems(err) {
			if p.Field != "time" { // a record dated before 2000 is ingestion's to refuse
				t.Errorf("the event does not validate: %s: %s", p.Field, p.Message)
			}
		}
	}
	md, err := json.Marshal(ev.Metadata)
	if err != nil {
		t.Fatalf("metadata does not encode: %v", err)
	}
	if len(md) > audit.MaxMetadataBytes {
		t.Errorf("metadata is %d bytes, over %d", len(md), audit.MaxMetadataBytes)
	}
	if imp, _ := ev.Metadata["import"].(map[string]any); imp["format"] != format {
		t.Errorf("metadata.import = %v, want format %s", ev.Metadata["import"], format)
	}
	// The raw record is kept as text: invalid UTF-8 becomes U+FFFD.
	if r, _ := ev.Metadata["raw"].(string); r == "" || !strings.Contains(strings.ToValidUTF8(string(raw), "\uFFFD"), r[:min(len(r), 16)]) {
		t.Errorf("metadata.raw does not hold the record")
	}
	whole, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("event does not encode: %v", err)
	}
	if len(whole) > audit.MaxEventBytes {
		t.Errorf("event is %d bytes, over %d", len(whole), audit.MaxEventBytes)
	}
}

// CheckError asserts that a refused record's error is an *audit.Error
// with a message, and names a field whenever the record was valid JSON.
func CheckError(t testing.TB, raw []byte, err error) {
	t.Helper()
	var ae *audit.Error
	if !errors.As(err, &ae) || ae.Message == "" {
		t.Fatalf("error %v is not an *audit.Error with a message", err)
	}
	if json.Valid(raw) && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) && ae.Code == audit.EINVALID && ae.Field == "" {
		t.Errorf("error %q names no field", ae.Message)
	}
}

// Golden decodes every record and compares one line per record (its line
// number, then the event's action, outcome, actor and target, or the
// error) with the file at golden; -update rewrites it. It returns how many
// records were decoded and how many of those mapped to catalog actions.
func Golden(t *testing.T, format string, dec importer.Decoder, records [][]byte, golden string) (decoded, catalog int) {
	t.Helper()
	var b strings.Builder
	for i, raw := range records {
		ev, err := dec(raw)
		if err != nil {
			CheckError(t, raw, err)
			fmt.Fprintf(&b, "%d\terror\t%s\n", i+1, audit.ErrorMessage(err))
			continue
		}
		Check(t, format, ev, raw)
		decoded++
		if audit.InCatalog(ev.Action) {
			catalog++
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\tactor=%s\ttarget=%s\tip=%s\n", i+1, ev.Action, ev.Outcome, ev.Actor.ID, ev.Target.ID, ev.Context.IP)
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return decoded, catalog
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := at(gl, i), at(wl, i)
			if g != w {
				t.Fatalf("%s differs at line %d (run with -update after checking):\n got: %s\nwant: %s", golden, i+1, g, w)
			}
		}
	}
	return decoded, catalog
}

// Fuzz is the body of every importer's fuzz target: a decoder never
// panics, and what it returns is either a valid event (Check) or a
// well-formed error (CheckError).
func Fuzz(t *testing.T, format string, dec importer.Decoder, raw []byte) {
	if len(raw) > 64<<10 {
		return
	}
	ev, err := dec(raw)
	if err != nil {
		CheckError(t, raw, err)
		return
	}
	Check(t, format, ev, raw)
}

func at(ss []string, i int) string {
	if i < len(ss) {
		return ss[i]
	}
	return ""
}
