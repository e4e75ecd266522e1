-- Tamper evidence (internal/integrity): one hash chain per tenant and UTC
-- day of event time. chain_entries holds each event's link until retention
-- purges the day (a signed tombstone then stands for the deleted links);
-- chain_heads the end of each day's chain.
CREATE TABLE chain_entries (
	tenant   TEXT NOT NULL,
	day      TEXT NOT NULL,
	seq      INTEGER NOT NULL,
	event_id TEXT NOT NULL,
	leaf     BLOB NOT NULL,
	hash     BLOB NOT NULL,
	PRIMARY KEY (tenant, day, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX chain_entries_event ON chain_entries (tenant, event_id);

CREATE TABLE chain_heads (
	tenant TEXT NOT NULL,
	day    TEXT NOT NULL,
	count  INTEGER NOT NULL,
	head   BLOB NOT NULL,
	PRIMARY KEY (tenant, day)
) WITHOUT ROWID;

-- Signed statements: the latest checkpoint and tombstone of a day (key =
-- the day), and erasure records (key = the erasure id). body is the exact
-- signed text.
CREATE TABLE integrity_statements (
	tenant  TEXT NOT NULL,
	kind    TEXT NOT NULL,
	key     TEXT NOT NULL,
	count   INTEGER NOT NULL,
	key_id  TEXT NOT NULL,
	body    BLOB NOT NULL,
	sig     BLOB NOT NULL,
	at      INTEGER NOT NULL,
	PRIMARY KEY (tenant, kind, key)
) WITHOUT ROWID;

-- The original hash of each erased field value.
CREATE TABLE erased_fields (
	tenant   TEXT NOT NULL,
	day      TEXT NOT NULL,
	event_id TEXT NOT NULL,
	field    TEXT NOT NULL,
	hash     BLOB NOT NULL,
	erasure  TEXT NOT NULL,
	PRIMARY KEY (tenant, day, event_id, field)
) WITHOUT ROWID;
