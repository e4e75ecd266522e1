-- Findings and incidents: the JSON document (bytea: JSON may carry NUL
-- characters that jsonb refuses) plus the columns that filters, paging and
-- triage use. Ids and tenants sort bytewise (COLLATE "C"), as SQLite's do,
-- so keyset cursors order the same on every server.

CREATE TABLE findings (
	tenant        text COLLATE "C" NOT NULL,
	id            text COLLATE "C" NOT NULL,
	rule_id       text     NOT NULL,
	severity      smallint NOT NULL,
	status        text     NOT NULL,
	actor_id      text     NOT NULL,
	ip            text     NOT NULL,
	first_seen_ns bigint   NOT NULL,
	last_seen_ns  bigint   NOT NULL,
	incident_id   text     NOT NULL,
	-- A finding keyed on a subnet (ip24) or an autonomous system (asn) is
	-- about every address inside it: a search by address matches these
	-- (audit.FindingNetworks); '' when not so keyed.
	subnet        text     NOT NULL,
	asn           text     NOT NULL,
	doc           bytea    NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX findings_seen ON findings (tenant, last_seen_ns DESC, id DESC);
CREATE INDEX findings_all_seen ON findings (last_seen_ns DESC, id DESC, tenant DESC);
CREATE INDEX findings_incident ON findings (tenant, incident_id, last_seen_ns DESC, id DESC);
CREATE INDEX findings_actor ON findings (tenant, actor_id) WHERE actor_id <> '';
CREATE INDEX findings_ip ON findings (ip) WHERE ip <> '';
CREATE INDEX findings_subnet ON findings (subnet) WHERE subnet <> '';
CREATE INDEX findings_asn ON findings (asn) WHERE asn <> '';

-- Incidents: findings of one attack grouped by the detection engine.
-- merged_into is set once an incident became part of an older one; such
-- rows are kept so their ids still resolve.
CREATE TABLE incidents (
	tenant        text COLLATE "C" NOT NULL,
	id            text COLLATE "C" NOT NULL,
	severity      smallint NOT NULL,
	status        text     NOT NULL,
	family        text     NOT NULL,
	merged_into   text     NOT NULL,
	first_seen_ns bigint   NOT NULL,
	last_seen_ns  bigint   NOT NULL,
	doc           bytea    NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX incidents_seen ON incidents (tenant, last_seen_ns DESC, id DESC) WHERE merged_into = '';
CREATE INDEX incidents_all_seen ON incidents (last_seen_ns DESC, id DESC, tenant DESC) WHERE merged_into = '';
CREATE INDEX incidents_expiry ON incidents (tenant, last_seen_ns);
