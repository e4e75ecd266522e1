package app_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
)

// TestReadinessOverHTTP: the probe says whether the node is ready and how
// far its pipeline lags, nothing more; the operator's status names the
// checks and when they ran.
func TestReadinessOverHTTP(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Server.ReadyInterval = 50 * time.Millisecond })
	probe := func() map[string]any {
		t.Helper()
		status, body := raw(t, "GET", n.url+"/readyz", "", "")
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil || status != http.StatusOK || out["ready"] != true {
			t.Fatalf("/readyz: %d %s", status, body)
		}
		for k := range out {
			if k != "ready" && k != "lag_events" {
				t.Fatalf("/readyz shows %q: %v", k, out)
			}
		}
		return out
	}
	waitFor(t, "the lag measured", func() bool { return probe()["lag_events"] == 0.0 })
	c, _ := n.tenantClient(t, "acme")
	if _, err := c.Send(t.Context(), login("alice", "198.51.100.7", time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c, client.SearchParams{Actor: "alice"}, 1)
	waitFor(t, "the lag back to 0 once the event is stored", func() bool { return probe()["lag_events"] == 0.0 })

	status, body := raw(t, "GET", n.url+"/v1/status", n.operator, "")
	var st struct {
		Ready     bool
		CheckedAt string `json:"checked_at"`
		Checks    map[string]struct {
			OK    bool
			Error string
			Info  any
		}
	}
	if err := json.Unmarshal(body, &st); err != nil || status != http.StatusOK {
		t.Fatalf("/v1/status: %d %s %v", status, body, err)
	}
	if !st.Ready || st.CheckedAt == "" || !st.Checks["storage"].OK || !st.Checks["pipeline"].OK ||
		st.Checks["pipeline"].Info.(map[string]any)["lag_events"] != 0.0 {
		t.Fatalf("/v1/status: %s", body)
	}
}
