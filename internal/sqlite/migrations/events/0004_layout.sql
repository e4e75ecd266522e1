-- Facts about a partition file's layout (internal/sqlite/layout.go):
-- bucket_ns, when present, is the width of the time buckets that lead the
-- partition's high-cardinality indexes (ev_id, ev_actor, ev_ip, ev_sess,
-- ev_tgt). Files created empty by this version get those indexes; older
-- files keep theirs, which every query still reads.
CREATE TABLE layout (
	k TEXT PRIMARY KEY,
	v INTEGER NOT NULL
) WITHOUT ROWID;
