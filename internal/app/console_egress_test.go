package app_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
)

// teachGateway sends logins of six staff at home in Europe, then through
// one gateway in Ashburn six hours later: enough for detection to learn
// the gateway, its /24 and (with no ASN known) nothing more.
func teachGateway(t *testing.T, c *client.Client, gateway string) {
	t.Helper()
	homes := []struct {
		city     string
		lat, lon float64
	}{{"Paris", 48.85, 2.35}, {"Berlin", 52.52, 13.40}, {"Madrid", 40.42, -3.70}, {"Rome", 41.90, 12.50}, {"Warsaw", 52.23, 21.01}, {"Oslo", 59.91, 10.75}}
	at := time.Now().Add(-10 * time.Hour).UTC()
	var evs []client.Event
	login := func(actor, ip, city string, lat, lon float64, t time.Time) client.Event {
		return client.Event{Action: "auth.login.success", Time: t, Actor: client.Actor{ID: actor},
			Context: client.Context{IP: ip, AuthMethod: "password", SessionID: fmt.Sprintf("s-%s-%d", actor, t.Unix()),
				UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
				Geo:       &client.ClientGeo{Country: "XX", City: city, Latitude: &lat, Longitude: &lon}}}
	}
	for i, h := range homes {
		evs = append(evs, login(fmt.Sprintf("staff-%d", i), fmt.Sprintf("85.%d.10.20", 110+i), h.city, h.lat, h.lon, at.Add(time.Duration(i)*time.Minute)))
	}
	for i := range homes {
		evs = append(evs, login(fmt.Sprintf("staff-%d", i), gateway, "Ashburn", 39.04, -77.49, at.Add(6*time.Hour+time.Duration(i)*time.Minute)))
	}
	if res, err := c.Send(t.Context(), evs...); err != nil || res.Rejected > 0 {
		t.Fatalf("send: %+v %v", res, err)
	}
}

// egressRow finds the row of one egress in the settings page's table.
func egressRow(page, value string) string {
	m := regexp.MustCompile(`(?s)<tr[^>]*>\s*<td><span class="small muted">[a-z]+</span> <code>` + regexp.QuoteMeta(value) + `</code>.*?</tr>`).FindString(page)
	return html.UnescapeString(m)
}

// TestConsoleEgresses: the settings page lists what detection learned
// (the numbers of the gateway's row, candidates behind a link, an empty
// state for a tenant with none), its row actions add allowlist entries of
// mode egress / not_egress that detection applies, the allowlist form
// takes a mode, and sessions without rules:write (a viewer, a read key)
// are refused; another tenant sees none of it.
func TestConsoleEgresses(t *testing.T) {
	n := startNode(t)
	a, keyA := n.tenantClient(t, "tenant-a")
	_, keyB := n.tenantClient(t, "tenant-b")
	teachGateway(t, a, "198.51.100.10")

	b := newBrowser(t, n.url)
	b.signIn(keyA)
	var page, row string
	waitFor(t, "the learned gateway on the settings page", func() bool {
		_, page = b.get("/settings")
		row = egressRow(page, "198.51.100.10")
		return row != ""
	})
	for _, want := range []string{">ip<", "<td>6 / 0</td>", "<td>6 / 0</td>", ">yes<", "pin as egress", "not an egress"} {
		if !strings.Contains(row, want) {
			t.Errorf("gateway row lacks %q: %s", want, row)
		}
	}
	if !strings.Contains(page, "A shared egress is a gateway") || egressRow(page, "198.51.100.0/24") == "" {
		t.Errorf("settings lack the explanation or the /24: %s", page)
	}

	// Other tenants see none of it, and say so.
	bb := newBrowser(t, n.url)
	bb.signIn(keyB)
	if _, pb := bb.get("/settings"); strings.Contains(pb, "198.51.100.10") || !strings.Contains(pb, "None learned yet") {
		t.Errorf("tenant B's settings: %s", pb)
	}
	if _, pb := bb.get("/settings?candidates=1"); strings.Contains(pb, "198.51.100.10") || !strings.Contains(pb, "No candidates yet") {
		t.Errorf("tenant B's candidates: %s", pb)
	}

	// "not an egress" on the /24: an entry of mode not_egress; the row and
	// the gateway inside it say so and are no relay any more.
	if resp, p := b.post("/settings/egresses", url.Values{"kind": {"net"}, "value": {"198.51.100.0/24"}, "mode": {"not_egress"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("not an egress: %d %s", resp.StatusCode, p)
	}
	entries, err := n.app.Stores().Rules.ListAllowEntries(t.Context(), "tenant-a")
	if err != nil || len(entries) != 1 || entries[0].Kind != "cidr" || entries[0].Value != "198.51.100.0/24" || entries[0].Mode != audit.AllowNotEgress {
		t.Fatalf("allowlist after 'not an egress': %+v %v", entries, err)
	}
	waitFor(t, "the gateway forbidden", func() bool {
		_, page = b.get("/settings")
		row = egressRow(page, "198.51.100.10")
		return strings.Contains(row, "<td>not an egress</td>") && strings.Contains(row, "<td>no</td>")
	})
	if !strings.Contains(page, "not an egress</td><td>marked not an egress in the console") {
		t.Errorf("the allowlist table does not show the entry's mode: %s", page)
	}

	// "pin as egress" on the address: mode egress.
	if resp, p := b.post("/settings/egresses", url.Values{"kind": {"ip"}, "value": {"198.51.100.10"}, "mode": {"egress"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pin: %d %s", resp.StatusCode, p)
	}
	entries, _ = n.app.Stores().Rules.ListAllowEntries(t.Context(), "tenant-a")
	if e := allowEntry(entries, "198.51.100.10"); len(entries) != 2 || e == nil || e.Kind != "ip" || e.Mode != audit.AllowEgress {
		t.Fatalf("allowlist after pin: %+v", entries)
	}
	// The allowlist form takes a mode; an unknown one is refused.
	if resp, p := b.post("/settings/allowlist", url.Values{"kind": {"asn"}, "value": {"AS64500"}, "mode": {"egress"}, "note": {"SASE"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("allowlist add with mode: %d %s", resp.StatusCode, p)
	}
	if resp, p := b.post("/settings/allowlist", url.Values{"kind": {"ip"}, "value": {"192.0.2.1"}, "mode": {"sometimes"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(p, "mode must be") {
		t.Fatalf("allowlist add with a bad mode: %d %s", resp.StatusCode, p)
	}
	if resp, p := b.post("/settings/egresses", url.Values{"kind": {"net"}, "value": {"198.51.100.0/24"}, "mode": {"trust"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("egress action with mode trust: %d %s", resp.StatusCode, p)
	}
	entries, _ = n.app.Stores().Rules.ListAllowEntries(t.Context(), "tenant-a")
	if e := allowEntry(entries, "64500"); len(entries) != 3 || e == nil || e.Mode != audit.AllowEgress {
		t.Fatalf("allowlist after the form: %+v", entries)
	}

	// Refused: a key without rules:write (no actions offered either), a
	// viewer link, and a POST without the CSRF token.
	_, readKey := n.tenantClient(t, "tenant-a", "findings:read")
	rb := newBrowser(t, n.url)
	rb.signIn(readKey)
	if _, p := rb.get("/settings"); egressRow(p, "198.51.100.10") == "" || strings.Contains(p, "pin as egress") {
		t.Errorf("a findings:read key's settings: %s", p)
	}
	if resp, _ := rb.post("/settings/egresses", url.Values{"kind": {"ip"}, "value": {"198.51.100.99"}, "mode": {"egress"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("pin by a findings:read key: %d", resp.StatusCode)
	}
	vb := viewerBrowser(t, n.url, keyA)
	if resp, _ := vb.post("/settings/egresses", url.Values{"kind": {"ip"}, "value": {"198.51.100.99"}, "mode": {"egress"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("pin by a viewer: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/settings/egresses", url.Values{"kind": {"ip"}, "value": {"198.51.100.99"}, "mode": {"egress"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("pin without CSRF: %d", resp.StatusCode)
	}
	if entries, _ = n.app.Stores().Rules.ListAllowEntries(t.Context(), "tenant-a"); len(entries) != 3 {
		t.Fatalf("a refused action changed the allowlist: %+v", entries)
	}
	if eb, _ := n.app.Stores().Rules.ListAllowEntries(t.Context(), "tenant-b"); len(eb) != 0 {
		t.Fatalf("tenant B's allowlist changed: %+v", eb)
	}

	// The settings view is read-audited.
	waitForAction(t, a, "vigil.search", func(e client.Event) bool {
		r, _ := e.Metadata["route"].(string)
		return strings.HasPrefix(r, "console GET /settings")
	})
}

func allowEntry(es []audit.AllowEntry, value string) *audit.AllowEntry {
	for i := range es {
		if es[i].Value == value {
			return &es[i]
		}
	}
	return nil
}
