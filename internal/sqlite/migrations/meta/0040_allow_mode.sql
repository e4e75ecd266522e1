-- How rules treat an allowlist entry: trust (the default), egress (a shared
-- egress the tenant declares) or not_egress (never learned as one).
ALTER TABLE allow_entries ADD COLUMN mode TEXT NOT NULL DEFAULT 'trust';
