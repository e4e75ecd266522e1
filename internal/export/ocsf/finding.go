package ocsf

import (
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Finding maps a finding onto a Detection Finding (2004). finding_info
// carries the id, the rule (as title, type and analytic) and the
// explanation; related_events are the evidence event ids; evidences name
// the actor, address and session the finding is about. time is when the
// finding was created, start_time and end_time the event times it spans.
func Finding(f *audit.Finding) Object {
	o := header(ClassDetectionFinding, CategoryFindings, findingActivity(f.Status, f.CreatedAt, f.UpdatedAt), "")
	o["time"] = ms(f.CreatedAt)
	o["start_time"] = ms(f.FirstSeen)
	o["end_time"] = ms(f.LastSeen)
	o["metadata"] = metadata(f.ID, f.Tenant, time.Time{})
	setSeverity(o, severity(f.Severity))
	setFindingStatus(o, f.Status, f.Resolution)
	put(o, "count", f.Count)
	o["risk_score"] = f.Score
	put(o, "message", f.Explanation)
	put(o, "comment", f.Note)
	title := f.RuleName
	if title == "" {
		title = f.RuleID
	}
	info := Object{
		"uid":             f.ID,
		"title":           title,
		"types":           []string{f.RuleID},
		"analytic":        Object{"uid": f.RuleID, "name": title, "type_id": 1, "type": "Rule"},
		"created_time":    ms(f.CreatedAt),
		"modified_time":   ms(f.UpdatedAt),
		"first_seen_time": ms(f.FirstSeen),
		"last_seen_time":  ms(f.LastSeen),
	}
	put(info, "desc", f.Explanation)
	put(info, "related_events", relatedEvents(f.Evidence))
	o["finding_info"] = info
	ev := Object{}
	if f.ActorID != "" || f.SessionID != "" {
		put(ev, "actor", actorObject(user(f.ActorID, "", ""), f.SessionID))
	}
	if f.IP != "" {
		ev["src_endpoint"] = Object{"ip": f.IP}
	}
	if len(ev) > 0 {
		o["evidences"] = []Object{ev}
	}
	u := Object{"group_key": f.GroupKey}
	put(u, "incident_id", f.IncidentID)
	put(u, "degraded", f.Degraded)
	put(u, "resolution", f.Resolution)
	if len(f.Facts) > 0 {
		u["facts"] = f.Facts
	}
	o["unmapped"] = u
	return o
}

// Incident maps an incident onto a Detection Finding (2004): the headline
// rule is the analytic, the family the finding type, the summary the
// description; every address and account at risk is one evidence, and
// the grouped findings, rules and networks are in unmapped.
func Incident(in *audit.Incident) Object {
	o := header(ClassDetectionFinding, CategoryFindings, findingActivity(in.Status, in.CreatedAt, in.UpdatedAt), "")
	o["time"] = ms(in.CreatedAt)
	o["start_time"] = ms(in.FirstSeen)
	o["end_time"] = ms(in.LastSeen)
	o["metadata"] = metadata(in.ID, in.Tenant, time.Time{})
	setSeverity(o, severity(in.Severity))
	setFindingStatus(o, in.Status, "")
	put(o, "count", in.FindingCount)
	o["risk_score"] = in.Score
	put(o, "message", in.Summary)
	put(o, "comment", in.Note)
	title := in.Headline
	if title == "" {
		title = "Incident " + in.ID // finding_info.title is required
	}
	info := Object{
		"uid":             in.ID,
		"title":           title,
		"created_time":    ms(in.CreatedAt),
		"modified_time":   ms(in.UpdatedAt),
		"first_seen_time": ms(in.FirstSeen),
		"last_seen_time":  ms(in.LastSeen),
	}
	put(info, "desc", in.Summary)
	if in.Family != "" {
		info["types"] = []string{in.Family}
	}
	if in.HeadlineRule != "" {
		info["analytic"] = Object{"uid": in.HeadlineRule, "name": in.Headline, "type_id": 1, "type": "Rule"}
	}
	put(info, "related_events", relatedEvents(in.Evidence))
	o["finding_info"] = info
	evs := make([]Object, 0, len(in.IPs)+len(in.Accounts))
	for _, a := range in.Accounts {
		evs = append(evs, Object{"actor": Object{"user": Object{"uid": a.Actor}}})
	}
	for _, ip := range in.IPs {
		evs = append(evs, Object{"src_endpoint": Object{"ip": ip}})
	}
	if len(evs) > 0 {
		o["evidences"] = evs
	}
	u := Object{"findings": in.Findings, "finding_count": in.FindingCount, "rules": in.Rules, "ip_count": in.IPCount}
	put(u, "family", in.Family)
	put(u, "networks", in.Networks)
	if len(in.Accounts) > 0 {
		acc := make([]Object, len(in.Accounts))
		for i, a := range in.Accounts {
			acc[i] = Object{"actor": a.Actor, "reason": a.Reason, "severity": string(a.Severity)}
		}
		u["accounts"] = acc
	}
	put(u, "merged_into", in.MergedInto)
	o["unmapped"] = u
	return o
}

// findingActivity is Close for a resolved finding, Update for one changed
// since it was created, Create otherwise.
func findingActivity(s audit.FindingStatus, created, updated time.Time) int {
	switch {
	case s == audit.StatusResolved:
		return FindingClose
	case updated.After(created):
		return FindingUpdate
	}
	return FindingCreate
}

// setFindingStatus: resolved is 4 Resolved, or 3 Suppressed when the team
// resolved it as benign; open and acknowledged are 99 Other with status
// New and In Progress (see FindingOther).
func setFindingStatus(o Object, s audit.FindingStatus, resolution string) {
	switch {
	case s == audit.StatusResolved && resolution == audit.ResolutionBenign:
		o["status_id"], o["status"] = FindingSuppressed, findingStatusNames[FindingSuppressed]
	case s == audit.StatusResolved:
		o["status_id"], o["status"] = FindingResolved, findingStatusNames[FindingResolved]
	case s == audit.StatusAcknowledged:
		o["status_id"], o["status"] = FindingOther, "In Progress"
	default:
		o["status_id"], o["status"] = FindingOther, "New"
	}
}

func severity(s audit.Severity) int {
	switch s {
	case audit.SeverityLow:
		return SeverityLow
	case audit.SeverityMedium:
		return SeverityMedium
	case audit.SeverityHigh:
		return SeverityHigh
	case audit.SeverityCritical:
		return SeverityCritical
	}
	return SeverityUnknown
}

func relatedEvents(ids []string) []Object {
	if len(ids) == 0 {
		return nil
	}
	out := make([]Object, len(ids))
	for i, id := range ids {
		out[i] = Object{"uid": id}
	}
	return out
}
