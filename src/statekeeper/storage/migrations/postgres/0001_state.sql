-- The key/value state store. Keys sort bytewise (COLLATE "C") so prefix listing
-- is an index range scan whatever the database's locale.
CREATE TABLE sk_state (
    namespace  TEXT NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      BYTEA NOT NULL,
    etag       TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    key_id     TEXT,
    PRIMARY KEY (namespace, key)
);
