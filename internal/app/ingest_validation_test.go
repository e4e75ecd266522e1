package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

// TestClientsCannotWriteVigilNamespace is issue 9.6: any events:write key
// could forge vigil.search/vigil.export records attributed to any key id
// (and vigil.* skips detection). The namespace is the server's: a client's
// vigil.* event is rejected naming the reason, while the server's own
// read-audit records are still written.
func TestClientsCannotWriteVigilNamespace(t *testing.T) {
	n := startNode(t)
	c, key := n.tenantClient(t, "acme")
	for _, action := range []string{"vigil.search", "vigil.export", "vigil.anything"} {
		body := `{"action":"` + action + `","actor":{"id":"key_someone_else","type":"api_key"},"metadata":{"rows":0}}`
		status, resp := raw(t, "POST", n.url+"/v1/events", key, body)
		if status != http.StatusBadRequest || !strings.Contains(string(resp), "reserved") || !strings.Contains(string(resp), `"field":"action"`) {
			t.Fatalf("%s from a client: %d %s", action, status, resp)
		}
		// An operator key may not either.
		body = `{"tenant":"acme","action":"` + action + `","actor":{"id":"x","type":"api_key"}}`
		if status, resp := raw(t, "POST", n.url+"/v1/events", n.operator, body); status != http.StatusBadRequest {
			t.Fatalf("%s from an operator key: %d %s", action, status, resp)
		}
	}
	// The server's own record of a read still lands.
	if _, err := c.SearchEvents(t.Context(), client.SearchParams{Actor: "nobody"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, resp := raw(t, "GET", n.url+"/v1/events?action=vigil.search", key, "")
		var page struct {
			Events []struct {
				Action string
				Actor  struct{ ID, Type string }
			}
		}
		_ = json.Unmarshal(resp, &page)
		if status == http.StatusOK && len(page.Events) > 0 {
			if page.Events[0].Actor.Type != "api_key" || page.Events[0].Actor.ID == "key_someone_else" {
				t.Fatalf("read-audit record: %+v", page.Events[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no vigil.search record of the read: %d %s", status, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEveryProblemInOneAnswer is issue 10.3 over HTTP: an event missing
// several catalog fields is answered with all of them at once (field paths
// named, per event), and a typo in a catalog namespace is refused with a
// suggestion instead of being stored as a custom action.
func TestEveryProblemInOneAnswer(t *testing.T) {
	n := startNode(t)
	_, key := n.tenantClient(t, "acme")
	body := `[{"action":"auth.login.success","actor":{"id":"alice"}},{"action":"auth.login.sucess","actor":{"id":"alice"}},{"action":"billing.invoice.paid","actor":{"id":"alice"}}]`
	status, resp := raw(t, "POST", n.url+"/v1/events", key, body)
	var res struct {
		Accepted int
		Results  []struct {
			Status string
			Error  *struct {
				Field, Message string
				Problems       []struct{ Field, Message string }
			}
		}
	}
	if err := json.Unmarshal(resp, &res); err != nil || status != http.StatusAccepted || res.Accepted != 1 || len(res.Results) != 3 {
		t.Fatalf("%d %s", status, resp)
	}
	first := res.Results[0].Error
	var fields []string
	for _, p := range first.Problems {
		fields = append(fields, p.Field)
	}
	if first.Field != "context.ip" || strings.Join(fields, ",") != "context.ip,context.user_agent,context.auth_method,context.session_id" {
		t.Fatalf("first event: %+v", first)
	}
	if e := res.Results[1].Error; e == nil || e.Field != "action" || !strings.Contains(e.Message, "did you mean `auth.login.success`?") {
		t.Fatalf("typo: %+v", e)
	}
}

// TestEdgeEventIDsRoundTrip is issue 9.8: every id the API accepts can be
// fetched back with GET /v1/events/{id}; ids it cannot serve ("..", ".",
// with '/') are refused at ingest, naming the field.
func TestEdgeEventIDsRoundTrip(t *testing.T) {
	n := startNode(t)
	c, key := n.tenantClient(t, "acme")
	ids := []string{"9", "A..b", "a...", "order_42:login.1", "x-" + strings.Repeat("y", 126), "01JDX3Q4Z5Y6W7V8T9S0R1P2N3"}
	var events []client.Event
	for _, id := range ids {
		events = append(events, client.Event{ID: id, Action: "billing.invoice.paid", Actor: client.Actor{ID: "u1"}})
	}
	res, err := c.Send(t.Context(), events...)
	if err != nil || res.Accepted != len(ids) {
		t.Fatalf("send: %+v %v", res, err)
	}
	waitForEvents(t, c, client.SearchParams{Actor: "u1"}, len(ids))
	for _, id := range ids {
		status, resp := raw(t, "GET", n.url+"/v1/events/"+url.PathEscape(id), key, "")
		if status != http.StatusOK || !strings.Contains(string(resp), `"id":"`+id+`"`) {
			t.Errorf("GET %q: %d %s", id, status, resp)
		}
	}
	for _, id := range []string{"..", ".", "a/b", "-x", "a b", "é", strings.Repeat("x", 129)} {
		b, _ := json.Marshal(map[string]any{"id": id, "action": "billing.invoice.paid", "actor": map[string]string{"id": "u1"}})
		status, resp := raw(t, "POST", n.url+"/v1/events", key, string(b))
		if status != http.StatusBadRequest || !strings.Contains(string(resp), `"field":"id"`) {
			t.Errorf("id %q: %d %s", id, status, resp)
		}
	}
}
