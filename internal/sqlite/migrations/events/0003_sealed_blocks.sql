-- Sealed partitions (internal/sqlite/seal.go): the bodies of up to 64
-- consecutive events of one tenant compressed together (zstd) into one
-- block; a sealed row's body refers to its block and slot. lo and hi are
-- the block's first and last event times, partition-relative like ts, so
-- a purge finds the blocks it empties. seal_mark holds the highest rid the
-- last seal looked at: rows above it were stored since.
CREATE TABLE blocks (
	bid INTEGER PRIMARY KEY,
	t   INTEGER NOT NULL,
	lo  INTEGER NOT NULL,
	hi  INTEGER NOT NULL,
	z   BLOB NOT NULL
);
CREATE INDEX blocks_t ON blocks (t, lo);

CREATE TABLE seal_mark (
	rid INTEGER PRIMARY KEY
);
