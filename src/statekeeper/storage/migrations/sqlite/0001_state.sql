-- The key/value state store.
CREATE TABLE sk_state (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    etag       TEXT NOT NULL,
    expires_at REAL,
    key_id     TEXT,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
