-- The event store (events/, storage/event_ops.py). Every namespace has one global log:
-- sk_event_log holds the last global position given out; the one writer thread runs
-- appends one after another, so they commit in position order (decision 0010).
-- sk_event_streams holds each stream's version (its last stream position, 1-based),
-- the row that expected versions are checked against. Tables keyed by their primary
-- key alone (WITHOUT ROWID): an append writes one b-tree per table, not two.
CREATE TABLE sk_event_log (
    namespace TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sk_event_streams (
    namespace  TEXT NOT NULL,
    stream     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, stream)
) WITHOUT ROWID;

CREATE TABLE sk_events (
    namespace   TEXT NOT NULL,
    position    INTEGER NOT NULL,
    stream      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    category    TEXT NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    data        BLOB NOT NULL,
    metadata    TEXT,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (namespace, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sk_events_stream ON sk_events (namespace, stream, version);
CREATE INDEX sk_events_category ON sk_events (namespace, category, position);

-- The latest snapshot of a stream (aggregates): its state at ``version``.
CREATE TABLE sk_event_snapshots (
    namespace   TEXT NOT NULL,
    stream      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT NOT NULL,
    data        BLOB NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (namespace, stream)
);

-- A named reader of the log: its checkpoint (the last global position it handled),
-- the lease of the process that holds it, and the event it is failing on.
CREATE TABLE sk_subscriptions (
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    position         INTEGER NOT NULL DEFAULT 0,
    lease_token      TEXT,
    lease_expires_at REAL,
    holder           TEXT,
    failing_position INTEGER,
    failures         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    parked           INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

-- Events a subscription gave up on after its retries, with the error.
CREATE TABLE sk_parked_events (
    namespace    TEXT NOT NULL,
    subscription TEXT NOT NULL,
    position     INTEGER NOT NULL,
    error        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    parked_at    REAL NOT NULL,
    PRIMARY KEY (namespace, subscription, position)
) WITHOUT ROWID;

-- A projection's generation that readers use, and the one being rebuilt (if any).
CREATE TABLE sk_projections (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    generation INTEGER NOT NULL,
    building   INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

