package app_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestReadinessOverHTTP: the probe says only ready; the operator's status
// names the storage check and when it ran.
func TestReadinessOverHTTP(t *testing.T) {
	n := startNode(t)
	status, body := raw(t, "GET", n.url+"/readyz", "", "")
	if status != http.StatusOK || string(body) != "{\"ready\":true}\n" {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	status, body = raw(t, "GET", n.url+"/v1/status", n.operator, "")
	var st struct {
		Ready     bool
		CheckedAt string `json:"checked_at"`
		Checks    map[string]struct {
			OK    bool
			Error string
		}
	}
	if err := json.Unmarshal(body, &st); err != nil || status != http.StatusOK {
		t.Fatalf("/v1/status: %d %s %v", status, body, err)
	}
	if !st.Ready || st.CheckedAt == "" || !st.Checks["storage"].OK {
		t.Fatalf("/v1/status: %s", body)
	}
}
