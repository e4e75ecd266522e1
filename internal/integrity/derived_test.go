package integrity_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
)

func TestScrubber(t *testing.T) {
	sc := integrity.NewScrubber([]string{"198.51.100.7:443", "198.51.100.7", "Mozilla/5.0 Firefox/128.0", "Lyon"})
	f := audit.Finding{ID: "f1", ActorID: "alice", IP: "198.51.100.7", GroupKey: "actor:alice",
		Explanation: "alice logged in from Lyon (198.51.100.7) with Mozilla/5.0 Firefox/128.0",
		Facts: map[string]any{"ip": "198.51.100.7", "cities": []any{"Paris", "Lyon"}, "to": map[string]any{"city": "Lyon", "km": 400.0},
			"ips": []string{"198.51.100.7:443"}, "n": 3.0}}
	if !sc.Finding(&f) {
		t.Fatal("finding reported unchanged")
	}
	b, _ := json.Marshal(f)
	for _, v := range []string{"198.51.100.7", "Firefox", "Lyon"} {
		if strings.Contains(string(b), v) {
			t.Errorf("%q survived: %s", v, b)
		}
	}
	if f.IP != "" || f.Explanation != "alice logged in from [erased] ([erased]) with [erased]" || f.GroupKey != "actor:alice" ||
		f.Facts["n"] != 3.0 || f.Facts["cities"].([]any)[0] != "Paris" || f.Facts["ips"].([]string)[0] != integrity.Erased {
		t.Errorf("scrubbed finding: %s", b)
	}
	if sc.Finding(&f) {
		t.Error("scrubbing twice changed the finding again")
	}

	inc := audit.Incident{ID: "i1", IPs: []string{"203.0.113.9", "198.51.100.7"}, Networks: []string{"198.51.100.0/24"},
		Summary: "new location Lyon", Timeline: []audit.TimelineEntry{{Summary: "from 198.51.100.7"}},
		Accounts: []audit.AccountAtRisk{{Actor: "alice", Reason: "new_location"}}}
	if !sc.Incident(&inc) {
		t.Fatal("incident reported unchanged")
	}
	if len(inc.IPs) != 1 || inc.IPs[0] != "203.0.113.9" || inc.Summary != "new location [erased]" ||
		inc.Timeline[0].Summary != "from [erased]" || inc.Accounts[0].Actor != "alice" || inc.Networks[0] != "198.51.100.0/24" {
		t.Errorf("scrubbed incident: %+v", inc)
	}
	if sc.Incident(&inc) {
		t.Error("scrubbing twice changed the incident again")
	}
	if integrity.NewScrubber(nil).Finding(&audit.Finding{IP: "198.51.100.7", Explanation: "x"}) {
		t.Error("an empty scrubber changed a finding")
	}
}
