-- Detection units (see units.go, unitstate.go): the stream's partitions
-- ("p0", "p1", …) and the "installation" unit, each processed by one node
-- at a time, the node holding the unit's advisory lock (UnitLocks).
--
-- One row per unit ever taken. Taking a unit increments its epoch and
-- records who took it and when (by the server's clock, in nanoseconds
-- since the Unix epoch); a node's detection checkpoints for the unit
-- commit only while the unit's epoch is still the one it took
-- (Store.UnitState). Names compare byte-wise (COLLATE "C"), as Go orders
-- them. Rows are never deleted: an epoch must not start over.
CREATE TABLE units (
	unit     text COLLATE "C" PRIMARY KEY,
	epoch    bigint NOT NULL CHECK (epoch > 0),
	holder   text   NOT NULL,
	taken_ns bigint NOT NULL
);
