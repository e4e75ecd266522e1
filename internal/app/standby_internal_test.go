package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStandbyForwards: a standby forwards requests to the active node and
// streams the answer through, however long it runs past the standby's own
// write timeout; a request already forwarded, or one it cannot deliver, is
// answered 503.
func TestStandbyForwards(t *testing.T) {
	var gotForwarded, gotHost string
	active := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotForwarded, gotHost = r.Header.Get(forwardedBy), r.Host
		w.Header().Set("Content-Type", "application/x-ndjson")
		// An export: a line every 250 ms for 1.5 s, beyond the standby's
		// 1 s write timeout.
		for i := range 6 {
			fmt.Fprintf(w, "{\"line\":%d}\n", i)
			http.NewResponseController(w).Flush()
			time.Sleep(250 * time.Millisecond)
		}
	}))
	defer active.Close()
	target, _ := url.Parse(active.URL)
	n := &clusterNode{name: "node-b", log: slog.New(slog.DiscardHandler), writeTimeout: 5 * time.Second}
	n.holder, n.target = "node node-a ("+active.URL+")", target
	standby := httptest.NewUnstartedServer(n.standbyHandler(prometheus.NewRegistry()))
	standby.Config.WriteTimeout = time.Second
	standby.Start()
	defer standby.Close()

	resp, err := http.Get(standby.URL + "/v1/export?format=ndjson")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || strings.Count(string(body), "\n") != 6 {
		t.Fatalf("forwarded export: %d, %d lines, %v: %q", resp.StatusCode, strings.Count(string(body), "\n"), err, body)
	}
	if gotForwarded != "node-b" || gotHost != strings.TrimPrefix(standby.URL, "http://") {
		t.Fatalf("the active node saw %s=%q and Host %q", forwardedBy, gotForwarded, gotHost)
	}

	// Already forwarded once: answered here, naming the active node.
	req, _ := http.NewRequest("GET", standby.URL+"/v1/events", nil)
	req.Header.Set(forwardedBy, "node-c")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "node node-a") {
		t.Fatalf("a forwarded request: %d %s", resp.StatusCode, body)
	}

	// The active node is gone: 503 with Retry-After, the client retries.
	active.Close()
	resp, err = http.Get(standby.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "could not reach the active node") {
		t.Fatalf("with the active node gone: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Its own probes are never forwarded.
	if resp, err := http.Get(standby.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("standby /readyz: %v %v", resp, err)
	}
}
