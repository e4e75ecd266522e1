-- Version 2 derives the idempotency key of a canonical ULID from its own
-- order (time, then its low 32 random bits, then a hash), so ids from a
-- monotonic generator append at the right edge of dedupe even within one
-- millisecond. Keys written by version 1 keep their old derivation in
-- dedupe_v1, which the stream still consults (read-only) for as long as it
-- holds rows; retention (Purge) drains it like dedupe.
ALTER TABLE dedupe RENAME TO dedupe_v1;

CREATE TABLE dedupe (
	k   BLOB PRIMARY KEY,
	th  INTEGER NOT NULL,
	day INTEGER NOT NULL
) WITHOUT ROWID;
