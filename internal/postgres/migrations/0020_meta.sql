-- Metadata: tenants, API keys, detection state, rule tuning, viewer
-- tokens, saved searches and tamper evidence. Times are bigint nanoseconds
-- (*_ns, NULL is "never"); text that lists sort on is COLLATE "C" so that
-- orders are byte orders, as in the SQLite store. Documents are bytea.

CREATE TABLE tenants (
	id                 text COLLATE "C" PRIMARY KEY,
	name               text    NOT NULL,
	retention_days     integer NOT NULL,
	max_event_age_days integer NOT NULL DEFAULT 0,
	created_ns         bigint  NOT NULL
);

-- API keys are looked up by id on every request; the secret is never
-- stored, only hash (SHA-256 of the secret part). tenant '' is an operator
-- key.
CREATE TABLE api_keys (
	id           text COLLATE "C" PRIMARY KEY,
	tenant       text COLLATE "C" NOT NULL,
	name         text   NOT NULL,
	scopes       text[] NOT NULL,
	hash         bytea  NOT NULL,
	created_ns   bigint NOT NULL,
	revoked_ns   bigint,
	last_used_ns bigint
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, id);

-- Detection state: namespaced keys, scanned in key order.
CREATE TABLE state (
	ns    text COLLATE "C" NOT NULL,
	key   text COLLATE "C" NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (ns, key)
);

CREATE TABLE rule_settings (
	tenant     text COLLATE "C" NOT NULL,
	rule_id    text COLLATE "C" NOT NULL,
	disabled   boolean NOT NULL,
	params     bytea,
	actions    text[]  NOT NULL,
	updated_ns bigint  NOT NULL,
	PRIMARY KEY (tenant, rule_id)
);

CREATE TABLE allow_entries (
	tenant     text COLLATE "C" NOT NULL,
	kind       text COLLATE "C" NOT NULL,
	value      text COLLATE "C" NOT NULL,
	mode       text   NOT NULL DEFAULT 'trust',
	note       text   NOT NULL,
	created_ns bigint NOT NULL,
	PRIMARY KEY (tenant, kind, value)
);

-- Viewer tokens: the record of each minted token (never the token text).
-- Looked up by id alone when a token is presented.
CREATE TABLE viewer_tokens (
	id         text COLLATE "C" PRIMARY KEY,
	tenant     text COLLATE "C" NOT NULL,
	doc        bytea  NOT NULL,
	created_ns bigint NOT NULL,
	expires_ns bigint NOT NULL,
	revoked_ns bigint
);
CREATE INDEX viewer_tokens_tenant ON viewer_tokens (tenant, created_ns, id);
CREATE INDEX viewer_tokens_expiry ON viewer_tokens (expires_ns);

CREATE TABLE saved_searches (
	tenant     text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	name       text COLLATE "C" NOT NULL,
	query      text   NOT NULL,
	created_by text   NOT NULL,
	created_ns bigint NOT NULL,
	PRIMARY KEY (tenant, id)
);

-- Tamper evidence: one hash chain per tenant and UTC day of event time.
-- chain_entries holds each event's link until retention trims the day;
-- chain_heads the end of each day's chain.
CREATE TABLE chain_entries (
	tenant   text COLLATE "C" NOT NULL,
	day      text COLLATE "C" NOT NULL,
	seq      bigint NOT NULL,
	event_id text COLLATE "C" NOT NULL,
	leaf     bytea  NOT NULL,
	hash     bytea  NOT NULL,
	PRIMARY KEY (tenant, day, seq)
);
CREATE UNIQUE INDEX chain_entries_event ON chain_entries (tenant, event_id);

CREATE TABLE chain_heads (
	tenant text COLLATE "C" NOT NULL,
	day    text COLLATE "C" NOT NULL,
	count  bigint NOT NULL,
	head   bytea  NOT NULL,
	PRIMARY KEY (tenant, day)
);

-- Signed statements: the latest checkpoint and tombstone of a day (key =
-- the day) and erasure records (key = the erasure id). body is the exact
-- signed text.
CREATE TABLE integrity_statements (
	tenant text COLLATE "C" NOT NULL,
	kind   text COLLATE "C" NOT NULL,
	key    text COLLATE "C" NOT NULL,
	count  bigint NOT NULL,
	key_id text   NOT NULL,
	body   bytea  NOT NULL,
	sig    bytea  NOT NULL,
	at_ns  bigint NOT NULL,
	PRIMARY KEY (tenant, kind, key)
);

-- The original hash of each erased field value.
CREATE TABLE erased_fields (
	tenant   text COLLATE "C" NOT NULL,
	day      text COLLATE "C" NOT NULL,
	event_id text COLLATE "C" NOT NULL,
	field    text COLLATE "C" NOT NULL,
	hash     bytea NOT NULL,
	erasure  text COLLATE "C" NOT NULL,
	PRIMARY KEY (tenant, day, event_id, field)
);
CREATE INDEX erased_fields_erasure ON erased_fields (tenant, erasure);
