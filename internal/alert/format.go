package alert

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Formats of a subscription's requests.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
	FormatTeams = "teams"
	// FormatPagerDuty sends PagerDuty Events API v2 events: a trigger for
	// an opened or escalated item, acknowledge and resolve for the others,
	// deduplicated by the item's kind, tenant and id.
	FormatPagerDuty = "pagerduty"
)

// Formats lists the formats a subscription may use.
var Formats = []string{FormatJSON, FormatSlack, FormatTeams, FormatPagerDuty, FormatEmail}

// PagerDutyURL is the Events API v2 endpoint a pagerduty subscription
// posts to unless it names another (an EU account's, say).
const PagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// maxPagerDutyEvents caps the events one delivery sends (one request
// each); the items beyond are summed up in one more trigger.
const maxPagerDutyEvents = 20

// maxListed caps each list an item repeats from its entity (evidence ids,
// accounts, addresses), so a delivery of many items stays small.
const maxListed = 10

// Item is one change as a receiver sees it (the generic JSON format's
// items; the chat formats are rendered from it).
type Item struct {
	Change      audit.LifecycleChange `json:"change"`
	Kind        string                `json:"kind"`
	Tenant      string                `json:"tenant,omitempty"`
	ID          string                `json:"id"`
	Severity    audit.Severity        `json:"severity"`
	Status      audit.FindingStatus   `json:"status"`
	RuleID      string                `json:"rule_id,omitempty"`
	Family      string                `json:"family,omitempty"`
	Title       string                `json:"title"`
	Explanation string                `json:"explanation"`
	Evidence    Evidence              `json:"evidence"`
	ConsoleURL  string                `json:"console_url,omitempty"`
	// Backfill is "alert" on a finding or incident raised on imported
	// history alerted on request (silent history is not alerted at all).
	Backfill string `json:"backfill,omitempty"`
	// Action is set on a response action (kind "action"): what the SaaS
	// is asked to do, and where it reports back.
	Action    *ActionRequest `json:"action,omitempty"`
	FirstSeen time.Time      `json:"first_seen"`
	LastSeen  time.Time      `json:"last_seen"`
	ChangedAt time.Time      `json:"changed_at"`
}

// ActionRequest is a response action as the SaaS receives it. The SaaS
// reports its acknowledgement and outcome with POST ResultURL (or
// /v1/actions/{id}/result on the API), using a key of the tenant with
// scope events:write.
type ActionRequest struct {
	Type        string `json:"type"`
	Actor       string `json:"actor"`
	FindingID   string `json:"finding_id,omitempty"`
	IncidentID  string `json:"incident_id,omitempty"`
	RequestedBy string `json:"requested_by"`
	Reason      string `json:"reason,omitempty"`
	ResultURL   string `json:"result_url,omitempty"`
}

// Evidence summarises what an item rests on: counts, and the first few
// event ids, accounts and addresses.
type Evidence struct {
	Events   int      `json:"events"`
	EventIDs []string `json:"event_ids"`
	Findings int      `json:"findings,omitempty"`
	Accounts []string `json:"accounts,omitempty"`
	IPs      []string `json:"ips,omitempty"`
	IPCount  int      `json:"ip_count,omitempty"`
}

// itemOf builds the item of a change; family names a rule's family.
func itemOf(c audit.Change, family func(string) string, publicURL string) (Item, error) {
	it := Item{Change: c.Change, Kind: c.Kind, Tenant: c.Tenant, ID: c.EntityID, Severity: c.Severity,
		RuleID: c.RuleID, Family: c.Family, ChangedAt: c.At}
	link := func(finding string) string {
		if publicURL == "" || finding == "" {
			return ""
		}
		u := strings.TrimRight(publicURL, "/") + "/findings/" + url.PathEscape(finding)
		if c.Tenant != "" {
			u += "?tenant=" + url.QueryEscape(c.Tenant)
		}
		return u
	}
	switch c.Kind {
	case audit.KindFinding:
		var f audit.Finding
		if err := json.Unmarshal(c.Doc, &f); err != nil {
			return it, fmt.Errorf("decode finding %s: %w", c.EntityID, err)
		}
		it.Status, it.Explanation, it.FirstSeen, it.LastSeen, it.Backfill = f.Status, f.Explanation, f.FirstSeen, f.LastSeen, f.Backfill
		it.Title = f.RuleName
		if it.Title == "" {
			it.Title = f.RuleID
		}
		if it.Family == "" && family != nil {
			it.Family = family(f.RuleID)
		}
		it.Evidence = Evidence{Events: f.Count, EventIDs: head(f.Evidence)}
		if f.ActorID != "" {
			it.Evidence.Accounts = []string{f.ActorID}
		}
		if f.IP != "" {
			it.Evidence.IPs, it.Evidence.IPCount = []string{f.IP}, 1
		}
		it.ConsoleURL = link(f.ID)
	case audit.KindIncident:
		var inc audit.Incident
		if err := json.Unmarshal(c.Doc, &inc); err != nil {
			return it, fmt.Errorf("decode incident %s: %w", c.EntityID, err)
		}
		it.Status, it.Explanation, it.FirstSeen, it.LastSeen, it.Backfill = inc.Status, inc.Summary, inc.FirstSeen, inc.LastSeen, inc.Backfill
		it.Title = inc.Headline
		if it.Title == "" {
			it.Title = inc.HeadlineRule
		}
		accounts := make([]string, 0, len(inc.Accounts))
		for _, a := range inc.Accounts {
			accounts = append(accounts, a.Actor)
		}
		it.Evidence = Evidence{Events: len(inc.Evidence), EventIDs: head(inc.Evidence), Findings: inc.FindingCount,
			Accounts: head(accounts), IPs: head(inc.IPs), IPCount: inc.IPCount}
		if len(inc.Findings) > 0 {
			it.ConsoleURL = link(inc.Findings[0])
		}
	case audit.KindAction:
		var a audit.ResponseAction
		if err := json.Unmarshal(c.Doc, &a); err != nil {
			return it, fmt.Errorf("decode response action %s: %w", c.EntityID, err)
		}
		it.Status = audit.FindingStatus(a.Status)
		it.Title = a.Type + " for " + a.ActorID
		it.Explanation = a.Reason
		it.FirstSeen, it.LastSeen = a.CreatedAt, a.CreatedAt
		it.Evidence = Evidence{Accounts: []string{a.ActorID}}
		it.Action = &ActionRequest{Type: a.Type, Actor: a.ActorID, FindingID: a.FindingID, IncidentID: a.IncidentID,
			RequestedBy: a.RequestedBy, Reason: a.Reason}
		if publicURL != "" {
			it.Action.ResultURL = strings.TrimRight(publicURL, "/") + "/v1/actions/" + url.PathEscape(a.ID) + "/result"
		}
		it.ConsoleURL = link(a.FindingID)
	default:
		return it, fmt.Errorf("change %d: unknown kind %q", c.Seq, c.Kind)
	}
	if it.Evidence.EventIDs == nil {
		it.Evidence.EventIDs = []string{}
	}
	return it, nil
}

func head(s []string) []string {
	if len(s) > maxListed {
		return s[:maxListed]
	}
	return s
}

// envelope is the generic JSON body.
type envelope struct {
	DeliveryID string `json:"delivery_id"`
	WebhookID  string `json:"webhook_id"`
	Items      []Item `json:"items"`
}

// render builds a delivery's body in format.
func render(format, deliveryID, webhookID string, items []Item) ([]byte, error) {
	switch format {
	case FormatSlack:
		return json.Marshal(slackBody(items))
	case FormatTeams:
		return json.Marshal(teamsBody(items))
	case FormatPagerDuty:
		return json.Marshal(pagerDutyEvents(deliveryID, items))
	}
	return json.Marshal(envelope{DeliveryID: deliveryID, WebhookID: webhookID, Items: items})
}

// summary is one line about an item.
func summary(it Item) string {
	who := ""
	if it.Tenant != "" {
		who = " [" + it.Tenant + "]"
	}
	return fmt.Sprintf("%s %s %s%s: %s", strings.ToUpper(string(it.Severity)), it.Kind, it.Change, who, it.Title)
}

// slackBody is a Slack incoming-webhook message: a text fallback and a
// section block per item (Slack allows 50 blocks; the rest are counted).
func slackBody(items []Item) map[string]any {
	blocks := []map[string]any{}
	for i, it := range items {
		if i == 45 {
			blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{
				{"type": "mrkdwn", "text": fmt.Sprintf("…and %d more", len(items)-45)}}})
			break
		}
		text := "*" + slackEscape(summary(it)) + "*\n" + slackEscape(it.Explanation)
		if it.ConsoleURL != "" {
			text += "\n<" + it.ConsoleURL + "|Open in Vigil>"
		}
		blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncateText(text, 2900)}})
	}
	fallback := fmt.Sprintf("Vigil: %d alert(s)", len(items))
	if len(items) == 1 {
		fallback = "Vigil: " + summary(items[0])
	}
	return map[string]any{"text": fallback, "blocks": blocks}
}

func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// teamsBody is a Microsoft Teams message carrying one Adaptive Card.
func teamsBody(items []Item) map[string]any {
	body := []map[string]any{{"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
		"text": fmt.Sprintf("Vigil: %d alert(s)", len(items))}}
	for i, it := range items {
		if i == 30 {
			body = append(body, map[string]any{"type": "TextBlock", "wrap": true, "text": fmt.Sprintf("…and %d more", len(items)-30)})
			break
		}
		text := summary(it) + "\n\n" + it.Explanation
		if it.ConsoleURL != "" {
			text += "\n\n[Open in Vigil](" + it.ConsoleURL + ")"
		}
		body = append(body, map[string]any{"type": "TextBlock", "wrap": true, "separator": true, "text": truncateText(text, 2000)})
	}
	return map[string]any{"type": "message", "attachments": []map[string]any{{
		"contentType": "application/vnd.microsoft.card.adaptive",
		"content": map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
			"version": "1.4", "body": body},
	}}}
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// pdEvent is a PagerDuty Events API v2 event without its routing key,
// which is added when it is sent (the delivery's stored body never holds
// it).
type pdEvent struct {
	EventAction string     `json:"event_action"`
	DedupKey    string     `json:"dedup_key"`
	Payload     *pdPayload `json:"payload,omitempty"`
	Client      string     `json:"client,omitempty"`
	ClientURL   string     `json:"client_url,omitempty"`
	Links       []pdLink   `json:"links,omitempty"`
}

type pdPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

type pdLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// pagerDutyEvents renders a delivery's items as PagerDuty events, at most
// maxPagerDutyEvents (the rest summed up in the last).
func pagerDutyEvents(deliveryID string, items []Item) []pdEvent {
	out := make([]pdEvent, 0, min(len(items), maxPagerDutyEvents))
	for i, it := range items {
		if i == maxPagerDutyEvents-1 && len(items) > maxPagerDutyEvents {
			rest := items[i:]
			worst := audit.SeverityLow
			for _, r := range rest {
				if r.Severity.Rank() > worst.Rank() {
					worst = r.Severity
				}
			}
			out = append(out, pdEvent{EventAction: "trigger", DedupKey: "vigil/overflow/" + deliveryID, Client: "Vigil",
				Payload: &pdPayload{Summary: truncateText(fmt.Sprintf("Vigil: %d more alerts in one batch; see the console", len(rest)), 1024),
					Source: "vigil", Severity: pdSeverity(worst), Class: "overflow"}})
			break
		}
		ev := pdEvent{DedupKey: "vigil/" + it.Kind + "/" + it.Tenant + "/" + it.ID, Client: "Vigil", ClientURL: it.ConsoleURL}
		switch it.Change {
		case audit.ChangeResolved:
			ev.EventAction = "resolve"
		case audit.ChangeAcknowledged:
			ev.EventAction = "acknowledge"
		default:
			ev.EventAction = "trigger"
			source := "vigil"
			if it.Tenant != "" {
				source = "vigil/" + it.Tenant
			}
			ev.Payload = &pdPayload{Summary: truncateText(summary(it), 1024), Source: source, Severity: pdSeverity(it.Severity),
				Timestamp: it.LastSeen.UTC().Format(time.RFC3339), Component: it.RuleID, Group: it.Tenant, Class: it.Family,
				CustomDetails: map[string]any{"explanation": it.Explanation, "evidence": it.Evidence, "kind": it.Kind, "id": it.ID,
					"change": it.Change, "first_seen": it.FirstSeen.UTC().Format(time.RFC3339)}}
			if it.ConsoleURL != "" {
				ev.Links = []pdLink{{Href: it.ConsoleURL, Text: "Open in Vigil"}}
			}
		}
		out = append(out, ev)
	}
	return out
}

// pdSeverity maps a Vigil severity onto PagerDuty's.
func pdSeverity(s audit.Severity) string {
	switch s {
	case audit.SeverityCritical:
		return "critical"
	case audit.SeverityHigh:
		return "error"
	case audit.SeverityMedium:
		return "warning"
	}
	return "info"
}
