-- Findings and incidents move to ordinary (rowid) tables. Their documents
-- are 1–2 KB of JSON: in a WITHOUT ROWID table a row keeps at most about
-- 1 KB on its b-tree page (4 KiB pages) and spills the rest to an overflow
-- page of its own, so each finding took about 5 KiB of disk. A rowid table
-- keeps rows of up to about 4 KB on the page. (tenant, id) stays the
-- primary key, now a unique index, so lookups and upserts are unchanged.
CREATE TABLE findings_v2 (
	tenant      TEXT NOT NULL,
	id          TEXT NOT NULL,
	rule_id     TEXT NOT NULL,
	severity    INTEGER NOT NULL,
	status      TEXT NOT NULL,
	actor_id    TEXT NOT NULL,
	ip          TEXT NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	doc         BLOB NOT NULL,
	incident_id TEXT NOT NULL DEFAULT '',
	subnet      TEXT NOT NULL DEFAULT '',
	asn         TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant, id)
);
INSERT INTO findings_v2 (tenant, id, rule_id, severity, status, actor_id, ip, first_seen, last_seen, doc, incident_id, subnet, asn)
	SELECT tenant, id, rule_id, severity, status, actor_id, ip, first_seen, last_seen, doc, incident_id, subnet, asn
	FROM findings ORDER BY last_seen, id;
DROP TABLE findings;
ALTER TABLE findings_v2 RENAME TO findings;
CREATE INDEX findings_seen ON findings (tenant, last_seen, id);
CREATE INDEX findings_all_seen ON findings (last_seen, id);
CREATE INDEX findings_incident ON findings (tenant, incident_id);

CREATE TABLE incidents_v2 (
	tenant      TEXT NOT NULL,
	id          TEXT NOT NULL,
	severity    INTEGER NOT NULL,
	status      TEXT NOT NULL,
	family      TEXT NOT NULL,
	merged_into TEXT NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	doc         BLOB NOT NULL,
	PRIMARY KEY (tenant, id)
);
INSERT INTO incidents_v2 (tenant, id, severity, status, family, merged_into, first_seen, last_seen, doc)
	SELECT tenant, id, severity, status, family, merged_into, first_seen, last_seen, doc
	FROM incidents ORDER BY last_seen, id;
DROP TABLE incidents;
ALTER TABLE incidents_v2 RENAME TO incidents;
CREATE INDEX incidents_seen ON incidents (tenant, last_seen, id);
CREATE INDEX incidents_all_seen ON incidents (last_seen, id);
