-- The whole current schema, applied at once to a new PostgreSQL schema.
-- tests/contract/test_migrations.py proves it equals the result of every migration.
CREATE TABLE sk_state (
    namespace  TEXT NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      BYTEA NOT NULL,
    etag       TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    key_id     TEXT,
    PRIMARY KEY (namespace, key)
);

CREATE INDEX sk_state_expiry ON sk_state (expires_at) WHERE expires_at IS NOT NULL;
