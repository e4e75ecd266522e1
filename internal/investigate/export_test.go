package investigate_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/investigate"
)

func TestExportCSV(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	flushes := 0
	e := &investigate.Export{W: bw, Format: investigate.ExportCSV, FlushEvery: 2, Flush: func() error { flushes++; return bw.Flush() }}
	if err := e.Columns([]audit.QueryColumn{{Name: "time"}, {Name: "user_agent"}, {Name: "n"}, {Name: "ip"}, {Name: "tags"}}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	rows := [][]any{
		{at, "=HYPERLINK(\"http://x\")", int64(-3), netip.MustParseAddr("198.51.100.7"), []string{"a", "b"}},
		{at, "+1", int64(4), nil, []string{"-x"}},
		{at, "Mozilla/5.0, \"quoted\"", int64(0), nil, nil},
	}
	for _, r := range rows {
		if err := e.Row(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !e.Started() || e.Rows() != 3 || flushes != 1 {
		t.Fatalf("started %v rows %d flushes %d", e.Started(), e.Rows(), flushes)
	}
	if err := e.Finish(); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"time", "user_agent", "n", "ip", "tags"},
		{"2026-12-05T10:00:00Z", "'=HYPERLINK(\"http://x\")", "-3", "198.51.100.7", "a;b"},
		{"2026-12-05T10:00:00Z", "'+1", "4", "", "'-x"},
		{"2026-12-05T10:00:00Z", "Mozilla/5.0, \"quoted\"", "0", "", ""},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d (the tail after the last flush must be written): %q", len(recs), len(want), recs)
	}
	for i := range want {
		if strings.Join(recs[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("record %d = %q, want %q", i, recs[i], want[i])
		}
	}
}

func TestExportNDJSON(t *testing.T) {
	var out bytes.Buffer
	e := &investigate.Export{W: bufio.NewWriter(&out), Format: investigate.ExportNDJSON}
	if err := e.Columns([]audit.QueryColumn{{Name: "actor.id"}, {Name: "count"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Row([]any{"alice", int64(3)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Row(nil, &audit.Event{ID: "e1", Action: "auth.login.failure"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Finish(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	var row map[string]any
	var ev audit.Event
	if json.Unmarshal([]byte(lines[0]), &row) != nil || row["actor.id"] != "alice" || row["count"] != float64(3) {
		t.Errorf("row line %s", lines[0])
	}
	if json.Unmarshal([]byte(lines[1]), &ev) != nil || ev.ID != "e1" {
		t.Errorf("event line %s", lines[1])
	}
}

func TestExportFormat(t *testing.T) {
	for in, want := range map[string]string{"": "csv", "csv": "csv", "ndjson": "ndjson", "ocsf": "ocsf", "ecs": "ecs"} {
		if got, err := investigate.ExportFormat(in); err != nil || got != want {
			t.Errorf("ExportFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := investigate.ExportFormat("xlsx"); audit.ErrorField(err) != "format" {
		t.Errorf("xlsx: %v", err)
	}
}

// TestExportOCSF writes each event as its OCSF object and refuses stats
// rows before anything is written, so the API can still answer 400.
func TestExportOCSF(t *testing.T) {
	var out bytes.Buffer
	e := &investigate.Export{W: bufio.NewWriter(&out), Format: investigate.ExportOCSF}
	if err := e.Columns([]audit.QueryColumn{{Name: "time"}, {Name: "action"}}); err != nil {
		t.Fatal(err)
	}
	if e.Started() {
		t.Fatal("started before the first event")
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, ev := range []*audit.Event{
		{ID: "e1", Tenant: "acme", Time: at, Action: audit.ActionLoginFailure, Outcome: audit.OutcomeFailure, Reason: "invalid_password", Actor: audit.Actor{ID: "bob"}},
		{ID: "e2", Tenant: "acme", Time: at, Action: audit.ActionPasswordChanged, Actor: audit.Actor{ID: "bob"}},
	} {
		if err := e.Row(nil, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Finish(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !e.Started() || e.Rows() != 2 {
		t.Fatalf("lines %q", lines)
	}
	want := []struct {
		class, typ float64
		status     string
	}{{3002, 300201, "Failure"}, {3001, 300103, "Unknown"}}
	for i, l := range lines {
		var o map[string]any
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatal(err)
		}
		if o["class_uid"] != want[i].class || o["type_uid"] != want[i].typ || o["status"] != want[i].status || o["metadata"].(map[string]any)["uid"] == nil {
			t.Errorf("line %d: %s", i, l)
		}
	}

	stats := &investigate.Export{W: bufio.NewWriter(&out), Format: investigate.ExportOCSF}
	if err := stats.Columns([]audit.QueryColumn{{Name: "count"}}); err != nil {
		t.Fatal(err)
	}
	if err := stats.Row([]any{int64(3)}, nil); audit.ErrorField(err) != "format" || stats.Started() {
		t.Errorf("a stats row: %v (started %v)", err, stats.Started())
	}
	if got := investigate.ExportContentType(investigate.ExportOCSF); got != "application/x-ndjson" {
		t.Errorf("content type %q", got)
	}
}
