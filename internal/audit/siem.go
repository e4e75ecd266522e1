package audit

import (
	"context"
	"time"
)

// SIEMCursor is a SIEM sink's durable position. Changes is the Seq of the
// last finding/incident change the sink's collector accepted (see Change).
// The dropped counters grow when the change log's bound or the sink's
// event lag bound discards what the sink had not sent; the reported
// counters are how much of that the sink has told its collector (with a
// gap record), so a gap is reported at least once.
type SIEMCursor struct {
	Sink                            string
	Changes                         int64
	ChangesDropped, ChangesReported int64
	EventsDropped, EventsReported   int64
}

// ChangePrune is what PruneChanges deleted: rows in all, and per holder
// (a SIEM sink's name, or "webhooks") how many it had not passed yet.
type ChangePrune struct {
	Deleted int64
	Skipped map[string]int64
}

// SIEMStore keeps SIEM sinks' cursors over the change log that alerting
// shares with them (see AlertStore.ChangesAfter).
type SIEMStore interface {
	// RegisterSIEMSinks makes names the set of sinks: a new one starts
	// after the last change recorded so far, one no longer named is
	// forgotten (and no longer holds changes back).
	RegisterSIEMSinks(ctx context.Context, names []string) error
	SIEMCursor(ctx context.Context, sink string) (SIEMCursor, error)
	// CommitSIEMChanges records that the collector accepted every change
	// up to seq and the gap reports up to reported.
	CommitSIEMChanges(ctx context.Context, sink string, seq, reported int64) error
	// AddSIEMEventGap counts n raw events the sink skipped (its lag bound).
	AddSIEMEventGap(ctx context.Context, sink string, n int64) error
	// CommitSIEMEventGap records that the gaps up to reported were sent.
	CommitSIEMEventGap(ctx context.Context, sink string, reported int64) error
	ChangesAfter(ctx context.Context, after int64, limit int) ([]Change, error)
	// LastChange is the Seq of the newest change recorded (0 for none).
	LastChange(ctx context.Context) (int64, error)
	// PruneChanges deletes the changes every holder has passed (the
	// webhook fan-out counts only when webhooks is true), then, regardless
	// of holders, the oldest beyond maxRows and those recorded before
	// before, moving lagging sinks' cursors past them and counting what
	// each skipped.
	PruneChanges(ctx context.Context, webhooks bool, maxRows int, before time.Time) (ChangePrune, error)
}
