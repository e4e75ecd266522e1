-- Alerting's change log, written in the same transaction as the finding or
-- incident that makes the change (see changes.go).

-- One row per alerted entity: the highest severity and the last status a
-- change carried, so opened is recorded once and escalated only upwards
-- (a replay of detection never alerts twice).
CREATE TABLE alert_marks (
	tenant   text     NOT NULL,
	kind     text     NOT NULL,
	id       text     NOT NULL,
	max_rank smallint NOT NULL,
	status   text     NOT NULL,
	PRIMARY KEY (tenant, kind, id)
);

-- Changes not yet fanned out to subscriptions. seq is taken under an
-- advisory lock held to commit (recordChange), so seq order is commit order
-- and a reader that has seen seq n never later finds a smaller one.
CREATE TABLE alert_changes (
	seq       bigint   PRIMARY KEY,
	tenant    text     NOT NULL,
	kind      text     NOT NULL,
	entity_id text     NOT NULL,
	change    text     NOT NULL,
	severity  smallint NOT NULL,
	rule_id   text     NOT NULL,
	family    text     NOT NULL,
	at_ns     bigint   NOT NULL,
	doc       bytea    NOT NULL
);

-- Counters and cursors by name: 'changes' (the last change seq given out),
-- 'alert_cursor' (the last change fanned out to webhooks).
CREATE TABLE counters (
	name  text   PRIMARY KEY,
	value bigint NOT NULL
);
INSERT INTO counters (name, value) VALUES ('changes', 0);
