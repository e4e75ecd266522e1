-- Alerting: webhook subscriptions and the outbox of deliveries, SIEM sinks'
-- cursors over the change log (alert_changes, 0001_core), and response
-- actions. Times are bigint nanoseconds (*_ns); documents are bytea.

-- doc holds the whole subscription (JSON); tenant '' is installation-wide.
-- Ids are unique installation-wide.
CREATE TABLE alert_subscriptions (
	id         text   PRIMARY KEY,
	tenant     text   NOT NULL,
	created_ns bigint NOT NULL,
	doc        bytea  NOT NULL
);
CREATE INDEX alert_subscriptions_tenant ON alert_subscriptions (tenant, created_ns, id);

-- One request to a subscription's receiver. body is set when the delivery
-- is sealed (status pending); until then its items are in alert_items.
CREATE TABLE alert_deliveries (
	id            text    PRIMARY KEY,
	sub_id        text    NOT NULL,
	tenant        text    NOT NULL,
	status        text    NOT NULL,
	items         integer NOT NULL,
	attempts      integer NOT NULL DEFAULT 0,
	created_ns    bigint  NOT NULL,
	retry_from_ns bigint  NOT NULL DEFAULT 0,
	next_ns       bigint  NOT NULL DEFAULT 0,
	delivered_ns  bigint,
	last_status   integer NOT NULL DEFAULT 0,
	last_error    text    NOT NULL DEFAULT '',
	body          bytea
);
CREATE INDEX alert_deliveries_sub ON alert_deliveries (sub_id, status, created_ns);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_ns, id) WHERE status = 'pending';
CREATE INDEX alert_deliveries_open ON alert_deliveries (created_ns, id) WHERE status = 'open';

-- Items of open deliveries (moved into the body when sealed).
CREATE TABLE alert_items (
	delivery_id text   NOT NULL,
	seq         bigint NOT NULL,
	doc         bytea  NOT NULL,
	PRIMARY KEY (delivery_id, seq)
);

-- The change log's age bound (PruneChanges) finds old changes by time.
CREATE INDEX alert_changes_at ON alert_changes (at_ns);

-- The last change fanned out to webhooks.
INSERT INTO counters (name, value) VALUES ('alert_cursor', 0) ON CONFLICT (name) DO NOTHING;

-- SIEM sinks' positions over alert_changes: a change is deleted once the
-- webhook fan-out and every sink have passed it, or by the log's bound.
CREATE TABLE siem_cursors (
	sink             text   PRIMARY KEY,
	changes_seq      bigint NOT NULL,
	changes_dropped  bigint NOT NULL DEFAULT 0,
	changes_reported bigint NOT NULL DEFAULT 0,
	events_dropped   bigint NOT NULL DEFAULT 0,
	events_reported  bigint NOT NULL DEFAULT 0,
	updated_ns       bigint NOT NULL
);

-- Response actions asked of the SaaS, with the outcome it reports.
CREATE TABLE response_actions (
	tenant     text   NOT NULL,
	id         text   NOT NULL,
	created_ns bigint NOT NULL,
	doc        bytea  NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX response_actions_created ON response_actions (tenant, created_ns DESC, id DESC);
