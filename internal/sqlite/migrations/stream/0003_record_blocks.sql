-- Version 3 stores the fresh events of one multi-row append chunk (up to 256
-- events with consecutive seqs) in one row: seq is then the LAST seq of the
-- row (so AUTOINCREMENT's high-water mark is still the last seq ever
-- assigned, and "DELETE … WHERE seq <= pos" deletes exactly the rows whose
-- every event is consumed), n is how many events it holds, and for n > 1 the
-- body is a sequence of uvarint(length) ‖ encoded event. Rows written by
-- versions 1 and 2 are single events, which is n = 1.
ALTER TABLE records ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
