-- Metadata: everything that is not an event. Small, read often, written
-- rarely (findings and detection state excepted).
CREATE TABLE tenants (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	retention_days INTEGER NOT NULL,
	created_at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	tenant       TEXT NOT NULL,
	name         TEXT NOT NULL,
	scopes       TEXT NOT NULL,
	hash         BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	revoked_at   INTEGER,
	last_used_at INTEGER
) WITHOUT ROWID;
CREATE INDEX api_keys_tenant ON api_keys (tenant, id);

-- Findings: the JSON document plus the columns that filters and paging use.
CREATE TABLE findings (
	tenant     TEXT NOT NULL,
	id         TEXT NOT NULL,
	rule_id    TEXT NOT NULL,
	severity   INTEGER NOT NULL,
	status     TEXT NOT NULL,
	actor_id   TEXT NOT NULL,
	ip         TEXT NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	doc        BLOB NOT NULL,
	PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX findings_seen ON findings (tenant, last_seen, id);
CREATE INDEX findings_all_seen ON findings (last_seen, id);

CREATE TABLE state (
	ns    TEXT NOT NULL,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (ns, key)
) WITHOUT ROWID;

CREATE TABLE rule_settings (
	tenant     TEXT NOT NULL,
	rule_id    TEXT NOT NULL,
	disabled   INTEGER NOT NULL,
	params     BLOB,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, rule_id)
) WITHOUT ROWID;

CREATE TABLE allow_entries (
	tenant     TEXT NOT NULL,
	kind       TEXT NOT NULL,
	value      TEXT NOT NULL,
	note       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, kind, value)
) WITHOUT ROWID;
