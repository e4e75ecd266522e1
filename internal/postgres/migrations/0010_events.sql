-- Accepted events (events.go). One partition per UTC day of the event
-- time, events_YYYYMMDD, created on demand by InsertEvents and ahead of
-- time at open. Times are Unix nanoseconds. The whole event is body (its
-- JSON, in bytea: JSON may carry NUL characters that jsonb refuses); the
-- other columns are what searches filter and sort on. Tenants, ids and
-- actions are validated ASCII and compared byte-wise (COLLATE "C", the
-- order of Go's string comparison, which cursors rely on); actor, session
-- and target ids are whatever the client sent, so they are bytea, NULL
-- when empty.
CREATE TABLE events (
	tenant     text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	time_ns    bigint NOT NULL,
	action     text COLLATE "C" NOT NULL,
	outcome    text COLLATE "C" NOT NULL DEFAULT '',
	actor_id   bytea,
	session_id bytea,
	target_id  bytea,
	ip         inet,
	body       bytea NOT NULL,
	PRIMARY KEY (tenant, id, time_ns)
) PARTITION BY RANGE (time_ns);

-- Every partition inherits these indexes: newest-first listing of a
-- tenant, and one per searchable column, tenant first.
CREATE INDEX events_time ON events (tenant, time_ns DESC, id DESC);
CREATE INDEX events_action ON events (tenant, action, time_ns DESC, id DESC);
CREATE INDEX events_actor ON events (tenant, actor_id, time_ns DESC);
CREATE INDEX events_session ON events (tenant, session_id, time_ns DESC);
CREATE INDEX events_target ON events (tenant, target_id, time_ns DESC);
CREATE INDEX events_ip ON events (tenant, ip, time_ns DESC);

-- The (tenant, id) of every stored event, across partitions: inserts claim
-- ids here first (idempotency), GetEvent finds the event's partition from
-- time_ns. Purge deletes the rows of the events it deletes.
CREATE TABLE event_ids (
	tenant  text COLLATE "C" NOT NULL,
	id      text COLLATE "C" NOT NULL,
	time_ns bigint NOT NULL,
	PRIMARY KEY (tenant, id)
);
