-- Viewer tokens: the record of each minted token (never the token text),
-- so that a token can be listed and revoked before it expires.
CREATE TABLE viewer_tokens (
	id         TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL,
	doc        BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX viewer_tokens_tenant ON viewer_tokens (tenant, created_at);
CREATE INDEX viewer_tokens_expiry ON viewer_tokens (expires_at);
