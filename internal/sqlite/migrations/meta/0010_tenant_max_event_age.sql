-- A tenant's override of how old an accepted event may be (issue 9): 0
-- means the installation's default (ingest.max_event_age).
ALTER TABLE tenants ADD COLUMN max_event_age_days INTEGER NOT NULL DEFAULT 0;
