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
	n := &clusterNode{name: "node-b", log: slog.New(slog.DiscardHandler), writeTimeout: 5 * time.Second, headerTimeout: 10 * time.Second}
	n.holder, n.target = "node node-a ("+active.URL+")", target
	standby := httptest.NewUnstartedServer(n.standbyHandler(prometheus.NewRegistry()))
	standby.Config.WriteTimeout = time.Second // the export below runs longer
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

	// An answer without a body that starts later than the per-write
	// deadline is still delivered: the deadline starts with the answer.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	slowURL, _ := url.Parse(slow.URL)
	n.mu.Lock()
	n.target, n.writeTimeout = slowURL, time.Second
	n.mu.Unlock()
	if resp, err := http.Post(standby.URL+"/v1/findings/f1/notes", "application/json", strings.NewReader("{}")); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a slow answer without a body: %v %v", resp, err)
	}

	// The active node takes the request and dies before answering: 502,
	// not 503 (which says nothing was done, and clients retry anything).
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer dying.Close()
	dyingURL, _ := url.Parse(dying.URL)
	n.mu.Lock()
	n.target = dyingURL
	n.mu.Unlock()
	resp, err = http.Post(standby.URL+"/v1/keys", "application/json", strings.NewReader(`{"tenant":"acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Retry-After") != "" || !strings.Contains(string(body), "may have been carried out") {
		t.Fatalf("an answer lost after the request was sent: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	// The target changing under requests (heartbeats are read every
	// second, and a takeover clears it): every request is answered.
	n.mu.Lock()
	n.target = target
	n.mu.Unlock()
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n.mu.Lock()
			if i%2 == 0 {
				n.target = nil
			} else {
				n.target = target
			}
			n.mu.Unlock()
		}
	}()
	for range 200 {
		resp, err := http.Get(standby.URL + "/healthz-of-active")
		if err != nil {
			close(stop)
			t.Fatalf("a request while the target changes: %v", err)
		}
		resp.Body.Close()
	}
	close(stop)
	<-flipped

	// The active node is gone: 503 with Retry-After, the client retries.
	n.mu.Lock()
	n.target = target
	n.mu.Unlock()
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
