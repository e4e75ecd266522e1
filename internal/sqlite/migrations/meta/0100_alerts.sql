-- Alerting: webhook subscriptions, the lifecycle changes recorded with
-- findings and incidents, and the outbox of deliveries.

-- doc holds the whole subscription (JSON); tenant '' is installation-wide.
CREATE TABLE alert_subscriptions (
	id         TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	doc        BLOB NOT NULL
);
CREATE INDEX alert_subscriptions_tenant ON alert_subscriptions (tenant, created_at);

-- One row per alerted entity: the highest severity and the last status a
-- change carried, so opened is recorded once and escalated only upwards
-- (a replay of detection never alerts twice).
CREATE TABLE alert_marks (
	tenant   TEXT NOT NULL,
	kind     TEXT NOT NULL,
	id       TEXT NOT NULL,
	max_rank INTEGER NOT NULL,
	status   TEXT NOT NULL,
	PRIMARY KEY (tenant, kind, id)
) WITHOUT ROWID;

-- Changes not yet fanned out to subscriptions; deleted once enqueued.
CREATE TABLE alert_changes (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant    TEXT NOT NULL,
	kind      TEXT NOT NULL,
	entity_id TEXT NOT NULL,
	change    TEXT NOT NULL,
	severity  INTEGER NOT NULL,
	rule_id   TEXT NOT NULL,
	family    TEXT NOT NULL,
	at        INTEGER NOT NULL,
	doc       BLOB NOT NULL
);

-- The last change fanned out (one row, name 'cursor').
CREATE TABLE alert_state (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);

CREATE TABLE alert_deliveries (
	id           TEXT PRIMARY KEY,
	sub_id       TEXT NOT NULL,
	tenant       TEXT NOT NULL,
	status       TEXT NOT NULL,
	items        INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	retry_from   INTEGER NOT NULL DEFAULT 0,
	next_at      INTEGER NOT NULL DEFAULT 0,
	delivered_at INTEGER,
	last_status  INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	body         BLOB
);
CREATE INDEX alert_deliveries_sub ON alert_deliveries (sub_id, status, created_at);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);

-- Items of open deliveries (moved into the body when sealed).
CREATE TABLE alert_items (
	delivery_id TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	doc         BLOB NOT NULL,
	PRIMARY KEY (delivery_id, seq)
) WITHOUT ROWID;

-- What is already stored has been seen: it opens no alert now.
INSERT INTO alert_marks (tenant, kind, id, max_rank, status)
	SELECT tenant, 'finding', id, severity, status FROM findings;
INSERT INTO alert_marks (tenant, kind, id, max_rank, status)
	SELECT tenant, 'incident', id, severity, status FROM incidents;
