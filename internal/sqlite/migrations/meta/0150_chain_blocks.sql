-- Tamper-evidence chains in blocks (internal/sqlite/integrity.go): one row
-- per 256 links instead of one per link, and a compact, time-ordered key
-- per chained event instead of an index on (tenant, event_id).
--
-- chains numbers each (tenant, day) chain.
CREATE TABLE chains (
	id     INTEGER PRIMARY KEY,
	tenant TEXT NOT NULL,
	day    TEXT NOT NULL,
	UNIQUE (tenant, day)
);

-- chain_blocks holds the links first_seq .. first_seq+n-1 of a chain, at
-- most 256: ids the event ids (a canonical ULID as tag 0 and 16 bytes,
-- any other id as tag 1, a varint length and its bytes), leaves n×32
-- bytes, hash_first the hash of link first_seq. The hash of every later
-- link is SHA-256(previous hash || leaf); hashes holds all n hashes
-- (n×32 bytes) only for a block whose stored hashes do not follow that
-- rule, and is NULL otherwise.
CREATE TABLE chain_blocks (
	chain      INTEGER NOT NULL,
	first_seq  INTEGER NOT NULL,
	n          INTEGER NOT NULL,
	hash_first BLOB NOT NULL,
	ids        BLOB NOT NULL,
	leaves     BLOB NOT NULL,
	hashes     BLOB,
	PRIMARY KEY (chain, first_seq)
) WITHOUT ROWID;

-- chain_ids finds the link of a chained event: k is the 16-byte key of
-- (tenant, event id) that stream.db uses (time-ordered for ULID ids), seq
-- the link's position in chain. A key is a hash, so a hit is confirmed
-- against the id stored in the block; two events sharing a key both keep
-- their row.
CREATE TABLE chain_ids (
	k     BLOB NOT NULL,
	chain INTEGER NOT NULL,
	seq   INTEGER NOT NULL,
	PRIMARY KEY (k, chain, seq)
) WITHOUT ROWID;

-- The links of chain_entries are moved into these tables, and
-- chain_entries dropped, by this migration's Go step (migrate.go), in the
-- same transaction.
