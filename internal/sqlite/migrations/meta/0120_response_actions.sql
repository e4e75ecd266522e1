-- Response actions (revoke sessions, force a password reset, require MFA,
-- lock an account) asked of the SaaS, with the outcome it reports.
CREATE TABLE response_actions (
	tenant     TEXT NOT NULL,
	id         TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	doc        BLOB NOT NULL,
	PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX response_actions_created ON response_actions (tenant, created_at);

-- The response actions a tenant has a rule's findings trigger
-- (comma-separated action types).
ALTER TABLE rule_settings ADD COLUMN actions TEXT NOT NULL DEFAULT '';
