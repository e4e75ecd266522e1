-- Active/standby nodes on one schema (see epoch.go, nodes.go, nodelock.go).

-- The fencing epoch: the node that takes the node lock increments it
-- (BeginEpoch), and a node's detection checkpoints commit only while it is
-- still the current one (FencedState).
INSERT INTO counters (name, value) VALUES ('node_epoch', 0) ON CONFLICT (name) DO NOTHING;

-- One row per node, upserted by its heartbeat, for `vigil cluster status`.
-- Names compare byte-wise (COLLATE "C"), as Go orders them. Times are
-- nanoseconds since the Unix epoch; lag is the node's count of events not
-- yet processed, -1 when unknown. Rows not seen for a day are deleted by
-- the next heartbeat.
CREATE TABLE nodes (
	name       text COLLATE "C" PRIMARY KEY,
	address    text   NOT NULL,
	role       text   NOT NULL CHECK (role IN ('active', 'standby')),
	epoch      bigint NOT NULL,
	version    text   NOT NULL,
	started_ns bigint NOT NULL,
	seen_ns    bigint NOT NULL,
	lag        bigint NOT NULL
);
CREATE INDEX nodes_seen ON nodes (seen_ns);
