-- The whole current schema, applied at once to a new SQLite database.
-- tests/contract/test_migrations.py proves it equals the result of every migration.
CREATE TABLE sk_state (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    etag       TEXT NOT NULL,
    expires_at REAL,
    key_id     TEXT,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE INDEX sk_state_expiry ON sk_state (expires_at) WHERE expires_at IS NOT NULL;

-- Durable queues: live messages, deduplication claims, and the archive.
-- available_at: for a ready message, when it may be delivered (delay, backoff);
-- for a leased one, when its lease ends and it may be delivered again.
CREATE TABLE sk_messages (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    namespace      TEXT NOT NULL,
    queue          TEXT NOT NULL,
    body           BLOB NOT NULL,
    attributes     TEXT,
    correlation_id TEXT,
    group_id       TEXT,
    state          TEXT NOT NULL,
    available_at   REAL NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_token    TEXT,
    last_error     TEXT,
    enqueued_at    REAL NOT NULL,
    dead_at        REAL,
    reply_to       TEXT
);

-- The ready order: receive walks this index from its start, in delivery order (due time,
-- then enqueue order), and stops after the messages it takes. Leased messages are in it
-- under their lease end, so an expired lease comes back in order and live ones are out
-- of the range a receive reads. Messages waiting behind their group are not in it.
CREATE INDEX sk_messages_due ON sk_messages (namespace, queue, available_at, seq)
    WHERE state IN ('ready', 'leased');

-- Messages waiting behind the head of their group, in group order.
CREATE INDEX sk_messages_waiting ON sk_messages (namespace, queue, group_id, seq)
    WHERE state = 'waiting';

CREATE INDEX sk_messages_dead ON sk_messages (namespace, queue, seq) WHERE state = 'dead';

-- Live (not dead-lettered) messages per group: exactly one live message of a group is
-- its head (ready or leased), the others wait.
CREATE TABLE sk_queue_groups (
    namespace TEXT NOT NULL,
    queue     TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    live      INTEGER NOT NULL,
    PRIMARY KEY (namespace, queue, group_id)
) WITHOUT ROWID;

-- A grouped message becomes live (sent, or redriven): it heads its group if the group
-- has no other live message, else it waits.
CREATE TRIGGER sk_messages_group_send AFTER INSERT ON sk_messages
WHEN NEW.group_id IS NOT NULL AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id) > 1;
END;

CREATE TRIGGER sk_messages_group_revive AFTER UPDATE OF state ON sk_messages
WHEN NEW.group_id IS NOT NULL AND OLD.state = 'dead' AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id) > 1;
END;

-- A grouped message leaves (acknowledged, dead-lettered, purged): if it was the head,
-- the group's next waiting message becomes ready.
CREATE TRIGGER sk_messages_group_ack AFTER DELETE ON sk_messages
WHEN OLD.group_id IS NOT NULL AND OLD.state <> 'dead'
BEGIN
    UPDATE sk_queue_groups SET live = live - 1
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id;
    DELETE FROM sk_queue_groups
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id
      AND live <= 0;
    UPDATE sk_messages SET state = 'ready'
    WHERE OLD.state <> 'waiting' AND seq = (
        SELECT seq FROM sk_messages
        WHERE namespace = OLD.namespace AND queue = OLD.queue
          AND group_id = OLD.group_id AND state = 'waiting'
        ORDER BY seq LIMIT 1);
END;

CREATE TRIGGER sk_messages_group_dead AFTER UPDATE OF state ON sk_messages
WHEN OLD.group_id IS NOT NULL AND OLD.state <> 'dead' AND NEW.state = 'dead'
BEGIN
    UPDATE sk_queue_groups SET live = live - 1
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id;
    DELETE FROM sk_queue_groups
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id
      AND live <= 0;
    UPDATE sk_messages SET state = 'ready'
    WHERE OLD.state <> 'waiting' AND seq = (
        SELECT seq FROM sk_messages
        WHERE namespace = OLD.namespace AND queue = OLD.queue
          AND group_id = OLD.group_id AND state = 'waiting'
        ORDER BY seq LIMIT 1);
END;

CREATE TABLE sk_queue_dedup (
    namespace  TEXT NOT NULL,
    queue      TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (namespace, queue, dedup_id)
) WITHOUT ROWID;

CREATE TABLE sk_message_archive (
    id             TEXT PRIMARY KEY,
    namespace      TEXT NOT NULL,
    queue          TEXT NOT NULL,
    body           BLOB NOT NULL,
    attributes     TEXT,
    correlation_id TEXT,
    group_id       TEXT,
    attempts       INTEGER NOT NULL,
    enqueued_at    REAL NOT NULL,
    completed_at   REAL NOT NULL,
    reply_to       TEXT,
    result         BLOB
);

CREATE INDEX sk_queue_dedup_expiry ON sk_queue_dedup (expires_at);

CREATE INDEX sk_message_archive_time ON sk_message_archive (namespace, queue, completed_at, id);

CREATE INDEX sk_message_archive_retention ON sk_message_archive (completed_at);

CREATE TABLE sk_idempotency (
    namespace        TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    state            TEXT NOT NULL,
    owner            TEXT,
    lease_expires_at REAL,
    result           BLOB,
    expires_at       REAL NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE INDEX sk_idempotency_expiry ON sk_idempotency (expires_at);

-- Durable workflows: one row per workflow, its journal of steps, and the events
-- (including callbacks and children's completions) delivered to it.
-- wake_at: when the workflow may run next (NULL: only an event can wake it).
CREATE TABLE sk_workflows (
    namespace        TEXT NOT NULL,
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            BLOB NOT NULL,
    output           BLOB,
    error            TEXT,
    owner            TEXT,
    fence            INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL,
    wake_at          REAL,
    waiting_for      TEXT,
    parent_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,  -- 0, 1 cancel, 2 pause (0014)
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    deadline         REAL,
    PRIMARY KEY (namespace, id)
);

-- Workflows due to run, by time (wake_at is NULL once finished, or while only an
-- event can wake it; a paused workflow, cancel_requested = 2, is left out whatever its
-- wake_at); keyed on wake_at, not the status, so that no point statement on one
-- workflow matches this partial index's predicate.
CREATE INDEX sk_workflows_due ON sk_workflows (namespace, wake_at)
    WHERE wake_at IS NOT NULL AND cancel_requested <> 2;

CREATE INDEX sk_workflows_listing ON sk_workflows (namespace, created_at, id);

CREATE INDEX sk_workflows_by_status ON sk_workflows (namespace, (status || ''), created_at, id);

CREATE INDEX sk_workflows_by_name ON sk_workflows (namespace, (name || ''), created_at, id);

CREATE TABLE sk_workflow_steps (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    input       BLOB,
    output      BLOB,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  REAL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, position)
);

CREATE TABLE sk_workflow_events (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    data        BLOB,
    received_at REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, name)
);

CREATE TABLE sk_workflow_definitions (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    definition TEXT,
    revision   INTEGER NOT NULL DEFAULT 1,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE sk_state_machines (
    namespace  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (namespace, kind, name)
);

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


-- ---- Schedules (issue 12, item 2; migration 0015_schedules) ----
CREATE TABLE sk_schedules (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    input        BLOB NOT NULL,
    spec         TEXT NOT NULL,
    overlap      TEXT NOT NULL,
    jitter       REAL NOT NULL,
    catchup      REAL NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    next_fire_at REAL,
    due_at       REAL,
    last_run_id  TEXT,
    buffered     TEXT NOT NULL DEFAULT '[]',
    version      INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (namespace, id)
);

CREATE INDEX sk_schedules_due ON sk_schedules (namespace, due_at) WHERE due_at IS NOT NULL;
