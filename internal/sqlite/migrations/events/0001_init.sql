-- One event partition: the events of one UTC time period (a day by default).
-- Strings that repeat (tenants, actions, user agents, countries, AS names…)
-- are stored once in dict and referenced by number.
CREATE TABLE dict (
	id  INTEGER PRIMARY KEY,
	val TEXT NOT NULL UNIQUE
);

-- ts is the event time in nanoseconds since the partition start (6 bytes on
-- disk for a day); t and act are dict ids; ah, sh, gh and idh are 32-bit
-- hashes of (tenant, actor id / session id / target id / event id) — a hash
-- collision only costs a row that the query then rejects by exact
-- comparison; ip is 4 bytes (IPv4) or 16 bytes (IPv6), so a CIDR is a byte
-- range. body is the codec form of every other field.
CREATE TABLE tenants (
	t INTEGER PRIMARY KEY
);

CREATE TABLE events (
	rid  INTEGER PRIMARY KEY,
	t    INTEGER NOT NULL,
	ts   INTEGER NOT NULL,
	id   TEXT NOT NULL,
	idh  INTEGER NOT NULL,
	act  INTEGER NOT NULL,
	ah   INTEGER,
	ip   BLOB,
	sh   INTEGER,
	gh   INTEGER,
	body BLOB NOT NULL
);

-- Compact secondary indexes; each ends in ts so a tenant's matches come out
-- newest first without a sort. Partial indexes skip rows without the key.
CREATE INDEX ev_time  ON events (t, ts);
CREATE INDEX ev_id    ON events (idh);
CREATE INDEX ev_act   ON events (t, act, ts);
CREATE INDEX ev_actor ON events (ah, ts) WHERE ah IS NOT NULL;
CREATE INDEX ev_ip    ON events (t, ip, ts) WHERE ip IS NOT NULL;
CREATE INDEX ev_sess  ON events (sh, ts) WHERE sh IS NOT NULL;
CREATE INDEX ev_tgt   ON events (gh, ts) WHERE gh IS NOT NULL;
