package ecs

import (
	"net/netip"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Namespace is the custom top-level field under which a document carries
// what ECS has no field for (vigil.finding.*, vigil.incident.*), as ECS
// asks of extensions: one name of its own that ECS will not take.
const Namespace = "vigil"

// Datasets (event.dataset) of the two alert documents.
const (
	DatasetFinding  = "vigil.finding"
	DatasetIncident = "vigil.incident"
)

// Finding maps a finding onto an ECS alert document, the shape Elastic
// Security gives alerts: event.kind alert, category intrusion_detection,
// the rule in rule.*, severity and score in event.severity and
// event.risk_score, the account and address in user.id, source.ip and
// related.*, ATT&CK in threat.* for the rules that are a known technique,
// and the rest (status, evidence event ids, facts) in vigil.finding.
// @timestamp is when the finding was created; event.start and event.end
// the event times it spans.
func Finding(f *audit.Finding) Object {
	title := f.RuleName
	if title == "" {
		title = f.RuleID
	}
	d := alert(DatasetFinding, f.ID, f.Tenant, f.Severity, f.Score, f.CreatedAt, f.FirstSeen, f.LastSeen)
	put(d, "message", f.Explanation)
	put(d["event"].(Object), "reason", f.Explanation)
	d["rule"] = Object{"id": f.RuleID, "name": title, "ruleset": "vigil"}
	var users, ips []string
	if f.ActorID != "" {
		d["user"] = Object{"id": f.ActorID}
		users = append(users, f.ActorID)
	}
	if ip, err := netip.ParseAddr(f.IP); err == nil {
		d["source"] = Object{"ip": ip.String()}
		ips = append(ips, ip.String())
	}
	related(d, users, ips)
	putThreat(d, []string{f.RuleID})
	v := Object{"id": f.ID, "status": string(f.Status), "severity": string(f.Severity), "group_key": f.GroupKey, "count": f.Count,
		"evidence": nonNil(f.Evidence), "updated": stamp(f.UpdatedAt)}
	put(v, "resolution", f.Resolution)
	put(v, "note", f.Note)
	put(v, "session_id", f.SessionID)
	put(v, "incident_id", f.IncidentID)
	put(v, "degraded", f.Degraded)
	put(v, "backfill", f.Backfill)
	if f.IP != "" && len(ips) == 0 {
		v["ip"] = f.IP // a key that is not one address (a network)
	}
	if len(f.Facts) > 0 {
		v["facts"] = f.Facts
	}
	d[Namespace] = Object{"finding": v}
	return d
}

// Incident maps an incident onto an ECS alert document: the headline rule
// is rule.*, its family rule.category; the accounts at risk and the
// addresses are related.user and related.ip (and user.id, source.ip when
// there is exactly one); threat.* is the union of the ATT&CK techniques of
// its rules; the group itself (finding ids, rules, accounts, networks,
// evidence event ids) is vigil.incident.
func Incident(in *audit.Incident) Object {
	d := alert(DatasetIncident, in.ID, in.Tenant, in.Severity, in.Score, in.CreatedAt, in.FirstSeen, in.LastSeen)
	put(d, "message", in.Summary)
	put(d["event"].(Object), "reason", in.Summary)
	if in.HeadlineRule != "" {
		r := Object{"id": in.HeadlineRule, "ruleset": "vigil"}
		put(r, "name", in.Headline)
		put(r, "category", in.Family)
		d["rule"] = r
	}
	users := make([]string, 0, len(in.Accounts))
	for _, a := range in.Accounts {
		if a.Actor != "" && !slices.Contains(users, a.Actor) {
			users = append(users, a.Actor)
		}
	}
	ips := make([]string, 0, len(in.IPs))
	for _, s := range in.IPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			ips = append(ips, ip.String())
		}
	}
	if len(users) == 1 {
		d["user"] = Object{"id": users[0]}
	}
	if len(ips) == 1 {
		d["source"] = Object{"ip": ips[0]}
	}
	related(d, users, ips)
	putThreat(d, in.Rules)
	v := Object{"id": in.ID, "status": string(in.Status), "severity": string(in.Severity),
		"findings": nonNil(in.Findings), "finding_count": in.FindingCount, "rules": nonNil(in.Rules),
		"ip_count": in.IPCount, "evidence": nonNil(in.Evidence), "updated": stamp(in.UpdatedAt)}
	put(v, "headline", in.Headline)
	put(v, "family", in.Family)
	put(v, "note", in.Note)
	put(v, "merged_into", in.MergedInto)
	put(v, "backfill", in.Backfill)
	if len(in.Networks) > 0 {
		v["networks"] = in.Networks
	}
	if len(in.Accounts) > 0 {
		acc := make([]Object, len(in.Accounts))
		for i, a := range in.Accounts {
			acc[i] = Object{"actor": a.Actor, "reason": a.Reason, "severity": string(a.Severity), "findings": nonNil(a.Findings)}
		}
		v["accounts"] = acc
	}
	d[Namespace] = Object{"incident": v}
	return d
}

// alert builds what the finding and incident documents share.
func alert(dataset, id, tenant string, sev audit.Severity, score int, created, first, last time.Time) Object {
	e := Object{
		"kind":     "alert",
		"category": []string{"intrusion_detection"},
		"type":     []string{"info"},
		"id":       id,
		"dataset":  dataset,
		"module":   Namespace,
		"severity": Severity(sev),
		"created":  stamp(created),
		"start":    stamp(first),
		"end":      stamp(last),
	}
	e["risk_score"] = score
	if score >= 0 && score <= 100 {
		e["risk_score_norm"] = score
	}
	d := Object{
		"@timestamp": stamp(created),
		"ecs":        Object{"version": Version},
		"event":      e,
	}
	if tenant != "" {
		d["organization"] = Object{"id": tenant}
	}
	return d
}

// Severity is event.severity of a finding or incident: 2 low, 3 medium,
// 4 high, 5 critical (the scale of OCSF's severity_id, so both exports
// agree), 0 when unknown.
func Severity(s audit.Severity) int {
	switch s {
	case audit.SeverityLow:
		return 2
	case audit.SeverityMedium:
		return 3
	case audit.SeverityHigh:
		return 4
	case audit.SeverityCritical:
		return 5
	}
	return 0
}

func related(d Object, users, ips []string) {
	r := Object{}
	if len(users) > 0 {
		r["user"] = users
	}
	if len(ips) > 0 {
		r["ip"] = ips
	}
	if len(r) > 0 {
		d["related"] = r
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// nonNil makes an absent list an empty JSON array rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// technique is one MITRE ATT&CK (Enterprise) technique and its tactic.
type technique struct {
	tacticID, tacticName         string
	id, name                     string
	subtechniqueID, subtechnique string
}

const attackURL = "https://attack.mitre.org/"

// techniqueOf is the ATT&CK technique of the built-in rules whose
// detection is one by definition. Rules that only observe context (a new
// location, an unusual hour, impossible travel) are evidence that a valid
// account is misused, not a technique of their own, and get none; so do a
// tenant's own rules.
func techniqueOf(rule string) (technique, bool) {
	switch rule {
	case "brute-force":
		return technique{tacticID: "TA0006", tacticName: "Credential Access", id: "T1110", name: "Brute Force"}, true
	case "credential-stuffing", "credential-stuffing-subnet", "credential-stuffing-asn", "distributed-credential-stuffing",
		"distributed-credential-stuffing-installation", "distributed-credential-stuffing-slow", "stuffing-hit":
		return technique{tacticID: "TA0006", tacticName: "Credential Access", id: "T1110", name: "Brute Force",
			subtechniqueID: "T1110.004", subtechnique: "Credential Stuffing"}, true
	case "persistence-after-risky-login":
		return technique{tacticID: "TA0003", tacticName: "Persistence", id: "T1098", name: "Account Manipulation"}, true
	}
	return technique{}, false
}

// putThreat sets threat.* from the techniques of rules, deduplicated.
// ECS fields hold arrays, so several techniques are parallel lists.
func putThreat(d Object, rules []string) {
	var tactics, techs []technique
	for _, r := range rules {
		t, ok := techniqueOf(r)
		if !ok {
			continue
		}
		if !slices.ContainsFunc(tactics, func(x technique) bool { return x.tacticID == t.tacticID }) {
			tactics = append(tactics, t)
		}
		if !slices.ContainsFunc(techs, func(x technique) bool { return x.id == t.id && x.subtechniqueID == t.subtechniqueID }) {
			techs = append(techs, t)
		}
	}
	if len(techs) == 0 {
		return
	}
	ta := Object{"id": []string{}, "name": []string{}, "reference": []string{}}
	for _, t := range tactics {
		ta["id"] = append(ta["id"].([]string), t.tacticID)
		ta["name"] = append(ta["name"].([]string), t.tacticName)
		ta["reference"] = append(ta["reference"].([]string), attackURL+"tactics/"+t.tacticID+"/")
	}
	te := Object{"id": []string{}, "name": []string{}, "reference": []string{}}
	sub := Object{"id": []string{}, "name": []string{}, "reference": []string{}}
	for _, t := range techs {
		if !slices.Contains(te["id"].([]string), t.id) {
			te["id"] = append(te["id"].([]string), t.id)
			te["name"] = append(te["name"].([]string), t.name)
			te["reference"] = append(te["reference"].([]string), attackURL+"techniques/"+t.id+"/")
		}
		if t.subtechniqueID != "" {
			sub["id"] = append(sub["id"].([]string), t.subtechniqueID)
			sub["name"] = append(sub["name"].([]string), t.subtechnique)
			sub["reference"] = append(sub["reference"].([]string), attackURL+"techniques/"+t.id+"/"+t.subtechniqueID[len(t.id)+1:]+"/")
		}
	}
	if len(sub["id"].([]string)) > 0 {
		te["subtechnique"] = sub
	}
	d["threat"] = Object{"framework": "MITRE ATT&CK", "tactic": ta, "technique": te}
}
