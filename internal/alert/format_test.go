package alert

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func testItems(n int) []Item {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{Change: audit.ChangeOpened, Kind: audit.KindFinding, Tenant: "acme", ID: fmt.Sprintf("f-%d", i),
			Severity: audit.SeverityHigh, RuleID: "brute-force", Title: "Brute force <script>", Explanation: "12 failed logins on alice & bob",
			ConsoleURL: "https://vigil.example.com/findings/f", FirstSeen: at, LastSeen: at, ChangedAt: at}
	}
	return out
}

func TestSlackAndTeamsBodies(t *testing.T) {
	b, err := render(FormatSlack, "d1", "wh1", testItems(60))
	if err != nil {
		t.Fatal(err)
	}
	var slack struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
			Elements []struct {
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &slack); err != nil {
		t.Fatal(err)
	}
	// Slack allows 50 blocks: 45 items and a line counting the rest.
	if len(slack.Blocks) != 46 || slack.Text != "Vigil: 60 alert(s)" || slack.Blocks[45].Elements[0].Text != "…and 15 more" {
		t.Fatalf("slack: %d blocks, text %q", len(slack.Blocks), slack.Text)
	}
	first := slack.Blocks[0].Text.Text
	if !strings.Contains(first, "Brute force &lt;script&gt;") || !strings.Contains(first, "alice &amp; bob") ||
		!strings.Contains(first, "<https://vigil.example.com/findings/f|Open in Vigil>") || !strings.HasPrefix(first, "*HIGH finding opened [acme]") {
		t.Fatalf("slack block %q", first)
	}

	b, err = render(FormatTeams, "d1", "wh1", testItems(40))
	if err != nil {
		t.Fatal(err)
	}
	var teams struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type string `json:"type"`
				Body []struct {
					Text string `json:"text"`
				} `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(b, &teams); err != nil {
		t.Fatal(err)
	}
	if teams.Type != "message" || len(teams.Attachments) != 1 || teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("teams envelope %s", b[:200])
	}
	body := teams.Attachments[0].Content.Body
	// A heading, 30 items and a line counting the rest.
	if len(body) != 32 || body[0].Text != "Vigil: 40 alert(s)" || body[31].Text != "…and 10 more" ||
		!strings.Contains(body[1].Text, "[Open in Vigil](https://vigil.example.com/findings/f)") {
		t.Fatalf("teams body: %d blocks, first %q", len(body), body[1].Text)
	}
}

func TestPagerDutyEvents(t *testing.T) {
	items := testItems(3)
	items[1].Change, items[2].Change = audit.ChangeResolved, audit.ChangeAcknowledged
	items[0].Severity = audit.SeverityCritical
	b, err := render(FormatPagerDuty, "d1", "wh1", items)
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0]["event_action"] != "trigger" || evs[1]["event_action"] != "resolve" || evs[2]["event_action"] != "acknowledge" {
		t.Fatalf("events %v", evs)
	}
	if evs[0]["dedup_key"] != "vigil/finding/acme/f-0" || evs[0]["payload"].(map[string]any)["severity"] != "critical" || evs[1]["payload"] != nil {
		t.Fatalf("events %v", evs)
	}
	if _, ok := evs[0]["routing_key"]; ok {
		t.Fatal("the stored body carries a routing key")
	}
	// A wave is at most maxPagerDutyEvents requests: the rest is summed up.
	b, _ = render(FormatPagerDuty, "d2", "wh1", testItems(50))
	_ = json.Unmarshal(b, &evs)
	last := evs[len(evs)-1]
	if len(evs) != maxPagerDutyEvents || last["dedup_key"] != "vigil/overflow/d2" ||
		!strings.Contains(last["payload"].(map[string]any)["summary"].(string), "31 more alerts") {
		t.Fatalf("a wave of 50: %d events, last %v", len(evs), last)
	}
}

func TestSealOpensOnlyWithTheSameKeyAndSubscription(t *testing.T) {
	k, _ := NewKeyring([]byte(strings.Repeat("k", 32)))
	other, _ := NewKeyring([]byte(strings.Repeat("o", 32)))
	sealed, err := k.Seal("routing-key-1", "wh_a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "routing-key-1") {
		t.Fatal("sealed value shows the plain text")
	}
	if again, _ := k.Seal("routing-key-1", "wh_a"); again == sealed {
		t.Fatal("sealing twice gave the same value: the nonce is not random")
	}
	if got, err := k.Open(sealed, "wh_a"); err != nil || got != "routing-key-1" {
		t.Fatalf("Open: %q %v", got, err)
	}
	if _, err := k.Open(sealed, "wh_b"); err == nil {
		t.Fatal("opened under another subscription")
	}
	if _, err := other.Open(sealed, "wh_a"); err == nil {
		t.Fatal("opened with another server's key")
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-3] ^= 1
	for _, bad := range []string{string(tampered), "v2." + sealed[3:], "v1.!!", "v1.AAAA", ""} {
		if _, err := k.Open(bad, "wh_a"); err == nil {
			t.Fatalf("opened %q", bad)
		}
	}
}
