package siem

import (
	"encoding/json"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Record types: the type field of every line.
const (
	TypeFinding  = audit.KindFinding
	TypeIncident = audit.KindIncident
	TypeAction   = audit.KindAction
	TypeEvent    = "event"
	TypeGap      = "gap"
)

// Line is one record sent to a collector: one NDJSON line, or the MSG of
// one syslog message. Every line names its type, tenant and position.
type Line struct {
	Type   string `json:"type"`
	Source string `json:"source"` // always "vigil"
	Sink   string `json:"sink"`
	Tenant string `json:"tenant,omitempty"`
	// Seq is the change's position in the change log (findings and
	// incidents) or the event's position in the event stream.
	Seq      int64                 `json:"seq,omitempty"`
	Change   audit.LifecycleChange `json:"change,omitempty"`
	ID       string                `json:"id,omitempty"`
	Rule     string                `json:"rule,omitempty"`
	Severity audit.Severity        `json:"severity,omitempty"`
	At       time.Time             `json:"at"`
	// Finding, Incident or Action (a response action a rule triggered) is
	// the entity's document as stored when the change was recorded; Event
	// the raw event.
	Finding  json.RawMessage `json:"finding,omitempty"`
	Incident json.RawMessage `json:"incident,omitempty"`
	Action   json.RawMessage `json:"action,omitempty"`
	Event    *audit.Event    `json:"event,omitempty"`
	// Stream and Dropped describe a gap: how many records of the stream
	// ("changes" or "events") were discarded unsent by a bound.
	Stream  string `json:"stream,omitempty"`
	Dropped int64  `json:"dropped,omitempty"`
}

func changeLine(sink string, c audit.Change) Line {
	l := Line{Type: c.Kind, Source: "vigil", Sink: sink, Tenant: c.Tenant, Seq: c.Seq, Change: c.Change, ID: c.EntityID,
		Rule: c.RuleID, Severity: c.Severity, At: c.At.UTC()}
	doc := json.RawMessage(c.Doc)
	if !json.Valid(doc) {
		doc = nil
	}
	switch c.Kind {
	case audit.KindIncident:
		l.Incident = doc
	case audit.KindAction:
		l.Action = doc
	default:
		l.Finding = doc
	}
	return l
}

func eventLine(sink string, r audit.Record) Line {
	ev := r.Event
	return Line{Type: TypeEvent, Source: "vigil", Sink: sink, Tenant: ev.Tenant, Seq: int64(r.Seq), ID: ev.ID, At: ev.Time.UTC(), Event: &ev}
}

func gapLine(sink, stream string, dropped int64, at time.Time) Line {
	return Line{Type: TypeGap, Source: "vigil", Sink: sink, Stream: stream, Dropped: dropped, At: at.UTC()}
}
