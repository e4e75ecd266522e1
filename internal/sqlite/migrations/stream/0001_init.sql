-- The durable ingest stream: the acknowledgement point of single-node Vigil.
-- records is append-only; seq is assigned by the committer and never reused
-- (AUTOINCREMENT keeps the high-water mark in sqlite_sequence even when every
-- record has been trimmed).
CREATE TABLE records (
	seq  INTEGER PRIMARY KEY AUTOINCREMENT,
	body BLOB NOT NULL
);

-- Idempotency keys: a 16-byte key derived from (tenant, id) whose first six
-- bytes are the id's own millisecond timestamp when the id is a ULID or a
-- UUIDv7 (zero otherwise), so that the usual, time-ordered ids append at the
-- right edge of the b-tree instead of touching a random page each.
-- th (a 32-bit tenant hash) and day (UTC day of the append) serve retention.
CREATE TABLE dedupe (
	k   BLOB PRIMARY KEY,
	th  INTEGER NOT NULL,
	day INTEGER NOT NULL
) WITHOUT ROWID;

-- Named consumers and their committed positions.
CREATE TABLE consumers (
	name TEXT PRIMARY KEY,
	pos  INTEGER NOT NULL
) WITHOUT ROWID;
