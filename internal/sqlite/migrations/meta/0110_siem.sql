-- SIEM sinks' positions over alert_changes (the change log webhooks and
-- SIEM sinks share): a change is deleted once the webhook fan-out and
-- every sink have passed it, or by the log's bound. Raw-event positions
-- live in the stream's consumers table ("siem:<sink>").
CREATE TABLE siem_cursors (
	sink             TEXT PRIMARY KEY,
	changes_seq      INTEGER NOT NULL,
	changes_dropped  INTEGER NOT NULL DEFAULT 0,
	changes_reported INTEGER NOT NULL DEFAULT 0,
	events_dropped   INTEGER NOT NULL DEFAULT 0,
	events_reported  INTEGER NOT NULL DEFAULT 0,
	updated_at       INTEGER NOT NULL
);
