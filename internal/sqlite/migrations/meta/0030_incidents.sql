-- Incidents: findings of one attack grouped by the detection engine.
-- doc holds the whole incident (JSON); the columns are what lists filter
-- and order on. merged_into is set once an incident became part of an
-- older one; such rows are kept so their ids still resolve.
CREATE TABLE incidents (
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
) WITHOUT ROWID;
CREATE INDEX incidents_seen ON incidents (tenant, last_seen, id);
CREATE INDEX incidents_all_seen ON incidents (last_seen, id);

-- Each finding names its incident.
ALTER TABLE findings ADD COLUMN incident_id TEXT NOT NULL DEFAULT '';
CREATE INDEX findings_incident ON findings (tenant, incident_id);
