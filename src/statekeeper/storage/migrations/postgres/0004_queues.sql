-- Durable queues: live messages, deduplication claims, and the archive.
-- available_at: for a ready message, when it may be delivered (delay, backoff);
-- for a leased one, when its lease ends and it may be delivered again.
CREATE TABLE sk_messages (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    namespace      TEXT NOT NULL,
    queue          TEXT NOT NULL,
    body           BYTEA NOT NULL,
    attributes     TEXT,
    correlation_id TEXT,
    group_id       TEXT,
    state          TEXT NOT NULL,
    available_at   DOUBLE PRECISION NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_token    TEXT,
    last_error     TEXT,
    enqueued_at    DOUBLE PRECISION NOT NULL,
    dead_at        DOUBLE PRECISION
);

CREATE INDEX sk_messages_due ON sk_messages (namespace, queue, available_at) WHERE state <> 'dead';

CREATE INDEX sk_messages_group ON sk_messages (namespace, queue, group_id, seq) WHERE group_id IS NOT NULL;

CREATE INDEX sk_messages_dead ON sk_messages (namespace, queue, dead_at) WHERE state = 'dead';

CREATE TABLE sk_queue_dedup (
    namespace  TEXT NOT NULL,
    queue      TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, queue, dedup_id)
);

CREATE TABLE sk_message_archive (
    id             TEXT PRIMARY KEY,
    namespace      TEXT NOT NULL,
    queue          TEXT NOT NULL,
    body           BYTEA NOT NULL,
    attributes     TEXT,
    correlation_id TEXT,
    group_id       TEXT,
    attempts       INTEGER NOT NULL,
    enqueued_at    DOUBLE PRECISION NOT NULL,
    completed_at   DOUBLE PRECISION NOT NULL
);

CREATE INDEX sk_message_archive_time ON sk_message_archive (namespace, queue, completed_at);
