-- Saved searches of the console, per tenant.
CREATE TABLE saved_searches (
	tenant     TEXT NOT NULL,
	id         TEXT NOT NULL,
	name       TEXT NOT NULL,
	query      TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
