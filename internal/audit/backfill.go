package audit

// Backfill marks history imported to teach detection (profiles, baselines,
// shared egresses) rather than to be alerted on. An event carries its mark
// in metadata.import.backfill; a finding or incident carries the mark of
// its latest evidence.
const (
	// BackfillSilent: findings on the event are stored, flagged, but their
	// changes are not alerted (no webhook, e-mail, PagerDuty or response
	// action).
	BackfillSilent = "silent"
	// BackfillAlert: history whose findings are flagged and still alerted.
	BackfillAlert = "alert"
)

// ValidBackfill says whether s is a backfill mark ("" is none).
func ValidBackfill(s string) bool { return s == "" || s == BackfillSilent || s == BackfillAlert }

// EventBackfill returns the event's backfill mark, "" when it is live (or
// the mark is not one of the Backfill values).
func EventBackfill(ev *Event) string {
	imp, _ := ev.Metadata["import"].(map[string]any)
	if s, _ := imp["backfill"].(string); s == BackfillSilent || s == BackfillAlert {
		return s
	}
	return ""
}
