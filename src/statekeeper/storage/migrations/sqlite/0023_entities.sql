-- Keyed entities (virtual objects): one row per entity that was ever called, holding
-- its state (JSON, sealed when encryption is on; NULL until a handler first commits),
-- how many calls changed it (version), and the lease that makes one process at a time
-- its writer: holder and lease_until, and lease_token, raised by every lease, which a
-- commit must still match (a writer whose lease was taken over applies nothing).
CREATE TABLE sk_entities (
    namespace   TEXT NOT NULL,
    type        TEXT NOT NULL,
    key         TEXT NOT NULL,
    state       BLOB,
    version     INTEGER NOT NULL DEFAULT 0,
    holder      TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (namespace, type, key)
) WITHOUT ROWID;

-- The answers to entity calls made with a call id, committed with the state their
-- handler left: a call repeated with its id gets this answer instead of running again.
-- expires_at: when the purge may drop it.
CREATE TABLE sk_entity_calls (
    namespace  TEXT NOT NULL,
    type       TEXT NOT NULL,
    key        TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    handler    TEXT NOT NULL,
    result     BLOB,
    error      TEXT,
    version    INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (namespace, type, key, call_id)
) WITHOUT ROWID;

CREATE INDEX sk_entity_calls_expiry ON sk_entity_calls (expires_at);
