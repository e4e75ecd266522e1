package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/internal/config"
)

func eventsBody(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%s-%d","action":"record.viewed","actor":{"id":"u%d"}}`, prefix, i, i%50)
	}
	b.WriteString("]")
	return b.String()
}

// postEvents sends a batch and returns the status, Retry-After and the
// error's limit name.
func postEvents(t *testing.T, url, key, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url+"/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Limit string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, resp.Header.Get("Retry-After"), e.Error.Limit
}

// TestTenantLimitOverrideFromConfig: an operator's per-tenant override in
// the configuration limits that tenant's events; its flood is answered 429
// naming tenant_event_rate with a Retry-After, while another tenant's
// requests at the same moment are accepted.
func TestTenantLimitOverrideFromConfig(t *testing.T) {
	one, burst := 1, 10_000
	n := startNode(t, func(c *config.Config) {
		c.Limits.Tenants = []config.TenantOverride{{ID: "noisy", EventRate: &one, EventBurst: &burst}}
	})
	_, noisy := n.tenantClient(t, "noisy")
	_, calm := n.tenantClient(t, "calm")
	if st, _, _ := postEvents(t, n.url, noisy, eventsBody("burst", 10_000)); st != http.StatusAccepted {
		t.Fatalf("noisy's first full batch: %d", st)
	}
	var wg sync.WaitGroup
	var noisyAnswers, calmAnswers [5][3]string
	for i := range 5 {
		wg.Go(func() {
			st, ra, lim := postEvents(t, n.url, noisy, eventsBody(fmt.Sprintf("more%d", i), 100))
			noisyAnswers[i] = [3]string{strconv.Itoa(st), ra, lim}
		})
		wg.Go(func() {
			st, ra, lim := postEvents(t, n.url, calm, eventsBody(fmt.Sprintf("calm%d", i), 100))
			calmAnswers[i] = [3]string{strconv.Itoa(st), ra, lim}
		})
	}
	wg.Wait()
	for i := range 5 {
		if a := noisyAnswers[i]; a[0] != "429" || a[2] != "tenant_event_rate" || a[1] == "" {
			t.Errorf("noisy over its override: status %s, Retry-After %q, limit %q; want 429 tenant_event_rate", a[0], a[1], a[2])
		} else if ra, _ := strconv.Atoi(a[1]); ra < 50 {
			t.Errorf("Retry-After %d s; at 1 event/s the next 100 events are ~100 s away", ra)
		}
		if a := calmAnswers[i]; a[0] != "202" {
			t.Errorf("calm, with the default limits, got %s (limit %q) while noisy was limited", a[0], a[2])
		}
	}
}
