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


-- Workflow versions, forks and retention (issue 12, operations part).
-- version: the application version that started the run (App(version=...), else a hash
-- of the workflow's code); a pinned worker leases only runs of its own versions (and
-- runs with none, started before this migration). purge_at: when a finished run is
-- purged (its finish time plus its retention; NULL: kept), read by upkeep in batches
-- through sk_workflows_expiry. sk_workflows_by_version: the runs of a version that have
-- not finished, the range a version move updates.
ALTER TABLE sk_workflows ADD COLUMN version TEXT;

ALTER TABLE sk_workflows ADD COLUMN purge_at REAL;

CREATE INDEX sk_workflows_by_version ON sk_workflows (namespace, version)
    WHERE version IS NOT NULL AND status IN ('pending', 'running', 'sleeping', 'waiting');

CREATE INDEX sk_workflows_expiry ON sk_workflows (purge_at, namespace, id)
    WHERE purge_at IS NOT NULL;

-- Workflow search (issue 12, search): the searchable attributes a workflow sets
-- (ctx.set_attributes), one row per workflow and attribute. An attribute name has one
-- kind per namespace, fixed by its first use (sk_workflow_attribute_kinds): keyword
-- values are in text_value; int, float, bool (0/1) and timestamp (Unix seconds) values
-- in number_value. created_at is the workflow's own (it never changes), so that a filter
-- on one attribute reads its index range in the listing's order (newest first) and a
-- page stops when it is full (each index holds the rows of its kind only: a statement on
-- one workflow's attributes finds no use for them). A purge deletes a workflow's attributes with it.
CREATE TABLE sk_workflow_attributes (
    namespace    TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    text_value   TEXT,
    number_value REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, name)
);

CREATE INDEX sk_workflow_attributes_text
    ON sk_workflow_attributes (namespace, name, text_value, created_at, workflow_id)
    WHERE text_value IS NOT NULL;

CREATE INDEX sk_workflow_attributes_number
    ON sk_workflow_attributes (namespace, name, number_value, created_at, workflow_id)
    WHERE number_value IS NOT NULL;

CREATE TABLE sk_workflow_attribute_kinds (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Messages to running workflows (issue 12, item 4: workflows/mailbox.py, updates.py,
-- values.py). A workflow's mailbox, numbered per topic; the updates asked of it and
-- their outcomes; the values it published, the last one under each key.
CREATE TABLE sk_workflow_messages (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    topic       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    data        BLOB,
    sent_at     REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, topic, seq)
);

CREATE TABLE sk_workflow_updates (
    namespace    TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    data         BLOB,
    status       TEXT NOT NULL,
    result       BLOB,
    error        TEXT,
    requested_at REAL NOT NULL,
    finished_at  REAL,
    PRIMARY KEY (namespace, workflow_id, seq)
);

CREATE INDEX sk_workflow_updates_pending ON sk_workflow_updates (namespace, workflow_id, seq)
    WHERE status = 'pending';

CREATE TABLE sk_workflow_values (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, key)
);

-- Flow control (issue 12, part 3): named workflow queues, and the runs started into them.
-- A queue's limits as the code declares them (upserted when a process starts a run into
-- it or runs it): NULL is no limit. A queued workflow is 'pending' with no wake_at (so it
-- is not due) until admission marks its sk_flow_runs row 'admitted' and sets its wake_at;
-- it keeps its slot until it ends ('done'). admitted_at stays: the rate limits count the
-- admissions of the last period through it. lock is 'd:<key>' while a debounced run waits
-- (starts with that key update it) and 's:<key>' while a singleton runs: one of each per
-- queue and key, across every worker (sk_flow_runs_lock).
CREATE TABLE sk_flow_queues (
    namespace           TEXT NOT NULL,
    name                TEXT NOT NULL,
    concurrency         INTEGER,
    per_key_concurrency INTEGER,
    rate_limit          INTEGER,
    rate_period         REAL,
    key_rate_limit      INTEGER,
    key_rate_period     REAL,
    updated_at          REAL NOT NULL,
    -- Its start rules (migration 0022/0023 flow_queue_rules): 'reject', 'queue' (singleton),
    -- 'debounce' or NULL; the input field its key is taken from (NULL: none or a function).
    start_rule          TEXT,
    key_field           TEXT,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

CREATE TABLE sk_flow_runs (
    seq         INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    id          TEXT NOT NULL,
    queue       TEXT NOT NULL,
    key         TEXT,
    priority    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    not_before  REAL NOT NULL,
    admitted_at REAL,
    lock        TEXT,
    created_at  REAL NOT NULL,
    UNIQUE (namespace, id)
);

-- Admission walks the waiting runs of a queue, highest priority first, then oldest.
CREATE INDEX sk_flow_runs_waiting ON sk_flow_runs (namespace, queue, priority DESC, seq)
    WHERE state = 'waiting';

-- The runs holding a slot, counted per queue and per key (never more than the limit).
CREATE INDEX sk_flow_runs_admitted ON sk_flow_runs (namespace, queue, key)
    WHERE state = 'admitted';

-- Admissions of the last rate period, per queue and per key.
CREATE INDEX sk_flow_runs_rate ON sk_flow_runs (namespace, queue, admitted_at)
    WHERE admitted_at IS NOT NULL;

CREATE INDEX sk_flow_runs_key_rate ON sk_flow_runs (namespace, queue, key, admitted_at)
    WHERE admitted_at IS NOT NULL AND key IS NOT NULL;

CREATE UNIQUE INDEX sk_flow_runs_lock ON sk_flow_runs (namespace, queue, lock)
    WHERE lock IS NOT NULL;

-- An admitted run is due at once (its workflow row waited with no wake_at, or with its
-- deadline's: a queued run times out while it waits).
CREATE TRIGGER sk_flow_runs_admit AFTER UPDATE OF state ON sk_flow_runs
WHEN NEW.state = 'admitted' AND OLD.state = 'waiting'
BEGIN
    UPDATE sk_workflows SET wake_at = NEW.admitted_at, updated_at = NEW.admitted_at
    WHERE namespace = NEW.namespace AND id = NEW.id AND status = 'pending'
      AND (wake_at IS NULL OR wake_at > NEW.admitted_at);
END;

-- Consumers' per-group concurrency (flow control): at most per_group messages of one
-- group of a queue are live heads (ready or leased) at a time, the rest wait; a queue
-- without a row here keeps FIFO groups (1). The send and revive triggers read it; a
-- head's leave promotes the next waiting message as before, which keeps the heads at
-- min(live, per_group).
CREATE TABLE sk_queue_limits (
    namespace TEXT NOT NULL,
    queue     TEXT NOT NULL,
    per_group INTEGER NOT NULL,
    concurrency INTEGER,
    PRIMARY KEY (namespace, queue)
) WITHOUT ROWID;

DROP TRIGGER sk_messages_group_send;

CREATE TRIGGER sk_messages_group_send AFTER INSERT ON sk_messages
WHEN NEW.group_id IS NOT NULL AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id)
      > coalesce((SELECT per_group FROM sk_queue_limits
                  WHERE namespace = NEW.namespace AND queue = NEW.queue), 1);
END;

DROP TRIGGER sk_messages_group_revive;

CREATE TRIGGER sk_messages_group_revive AFTER UPDATE OF state ON sk_messages
WHEN NEW.group_id IS NOT NULL AND OLD.state = 'dead' AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id)
      > coalesce((SELECT per_group FROM sk_queue_limits
                  WHERE namespace = NEW.namespace AND queue = NEW.queue), 1);
END;

-- ---- Schedules (issue 12, item 2; migration 0019_schedules) ----
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
    -- The workflow queue its fires start their runs in (NULL: none; migration
    -- 0021_schedule_queues), and their key and priority there.
    queue        TEXT,
    queue_key    TEXT,
    priority     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, id)
);

CREATE INDEX sk_schedules_due ON sk_schedules (namespace, due_at) WHERE due_at IS NOT NULL;

-- The leased messages of a queue under a live lease, counted by a receive of a queue
-- with a concurrency limit (sk_queue_limits.concurrency, NULL: no limit).
CREATE INDEX sk_messages_leased ON sk_messages (namespace, queue, available_at)
    WHERE state = 'leased';

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

-- Durable streams of workflows (ctx.write_stream): the values written under a key, in
-- order (seq 0, 1, ...), each committed with the journal entry that wrote it: the run
-- (how many times the workflow had continued as new) and the journal position, which
-- its value (JSON, sealed when encryption is on) is bound to and by which a rewind
-- forgets what it wrote from there. A row without a value closes the stream
-- (ctx.close_stream): readers end there.
CREATE TABLE sk_workflow_streams (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    value       BLOB,
    run         INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    written_at  REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, key, seq)
) WITHOUT ROWID;

-- Out-of-line payloads (claim check, statekeeper.blobs): a payload above the threshold
-- is stored as a blob and its column holds a 20-byte reference instead: the bytes
-- FF 53 4B 52 ("\xffSKR") and the blob's 16-byte id. sk_blobs counts the rows that
-- refer to each blob (refs), kept by the triggers below on every payload column, in
-- the transaction that writes or deletes the row: a copied row adds a reference, a
-- deleted or overwritten one drops it. At zero a blob is marked released, and the
-- sweep removes it with its chunks (in the database or a directory), as it removes
-- blobs never referenced (a writer that stopped before its row committed) once they
-- are older than the grace period. A row that refers to a blob that is gone is refused.
-- size and chunks are NULL until the last chunk is written.

CREATE TABLE sk_blobs (
    id          BLOB PRIMARY KEY,
    namespace   TEXT NOT NULL,
    store       TEXT NOT NULL,
    size        INTEGER,
    chunks      INTEGER,
    refs        INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    released_at REAL
);
CREATE INDEX sk_blobs_unreferenced ON sk_blobs (created_at) WHERE refs <= 0;

-- A blob's bytes in the database: chunk seq of blob blob_id (sealed when encryption is on).
CREATE TABLE sk_blob_chunks (
    blob_id BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (blob_id, seq)
);

-- The count crossing zero: the last reference gone marks the blob released (the sweep
-- removes it and its chunks); a reference coming back (a row deleted and inserted
-- elsewhere in one transaction) takes the mark away.
CREATE TRIGGER sk_blobs_released AFTER UPDATE OF refs ON sk_blobs
WHEN NEW.refs <= 0 AND OLD.refs > 0
BEGIN
    UPDATE sk_blobs SET released_at = (julianday('now') - 2440587.5) * 86400.0
    WHERE id = NEW.id;
END;
CREATE TRIGGER sk_blobs_referred AFTER UPDATE OF refs ON sk_blobs
WHEN NEW.refs > 0 AND OLD.refs <= 0 AND NEW.released_at IS NOT NULL
BEGIN
    UPDATE sk_blobs SET released_at = NULL WHERE id = NEW.id;
END;

CREATE TRIGGER sk_blob_ref_sk_state_value_i AFTER INSERT ON sk_state
WHEN substr(NEW.value, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_state_value_u AFTER UPDATE OF value ON sk_state
WHEN NEW.value IS NOT OLD.value AND (substr(NEW.value, 1, 4) = X'FF534B52' OR substr(OLD.value, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.value, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.value, 1, 4) = X'FF534B52' AND id = substr(NEW.value, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.value, 1, 4) = X'FF534B52' AND id = substr(OLD.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_state_value_d AFTER DELETE ON sk_state
WHEN substr(OLD.value, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.value, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_messages_body_i AFTER INSERT ON sk_messages
WHEN substr(NEW.body, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_messages_body_u AFTER UPDATE OF body ON sk_messages
WHEN NEW.body IS NOT OLD.body AND (substr(NEW.body, 1, 4) = X'FF534B52' OR substr(OLD.body, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.body, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.body, 1, 4) = X'FF534B52' AND id = substr(NEW.body, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.body, 1, 4) = X'FF534B52' AND id = substr(OLD.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_messages_body_d AFTER DELETE ON sk_messages
WHEN substr(OLD.body, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.body, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_message_archive_body_i AFTER INSERT ON sk_message_archive
WHEN substr(NEW.body, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_u AFTER UPDATE OF body ON sk_message_archive
WHEN NEW.body IS NOT OLD.body AND (substr(NEW.body, 1, 4) = X'FF534B52' OR substr(OLD.body, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.body, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.body, 1, 4) = X'FF534B52' AND id = substr(NEW.body, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.body, 1, 4) = X'FF534B52' AND id = substr(OLD.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_d AFTER DELETE ON sk_message_archive
WHEN substr(OLD.body, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.body, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_message_archive_result_i AFTER INSERT ON sk_message_archive
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_u AFTER UPDATE OF result ON sk_message_archive
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_d AFTER DELETE ON sk_message_archive
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_idempotency_result_i AFTER INSERT ON sk_idempotency
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_u AFTER UPDATE OF result ON sk_idempotency
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_d AFTER DELETE ON sk_idempotency
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflows_input_i AFTER INSERT ON sk_workflows
WHEN substr(NEW.input, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_input_u AFTER UPDATE OF input ON sk_workflows
WHEN NEW.input IS NOT OLD.input AND (substr(NEW.input, 1, 4) = X'FF534B52' OR substr(OLD.input, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.input, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.input, 1, 4) = X'FF534B52' AND id = substr(NEW.input, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.input, 1, 4) = X'FF534B52' AND id = substr(OLD.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_input_d AFTER DELETE ON sk_workflows
WHEN substr(OLD.input, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.input, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflows_output_i AFTER INSERT ON sk_workflows
WHEN substr(NEW.output, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_output_u AFTER UPDATE OF output ON sk_workflows
WHEN NEW.output IS NOT OLD.output AND (substr(NEW.output, 1, 4) = X'FF534B52' OR substr(OLD.output, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.output, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.output, 1, 4) = X'FF534B52' AND id = substr(NEW.output, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.output, 1, 4) = X'FF534B52' AND id = substr(OLD.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_output_d AFTER DELETE ON sk_workflows
WHEN substr(OLD.output, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.output, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_i AFTER INSERT ON sk_workflow_steps
WHEN substr(NEW.input, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_u AFTER UPDATE OF input ON sk_workflow_steps
WHEN NEW.input IS NOT OLD.input AND (substr(NEW.input, 1, 4) = X'FF534B52' OR substr(OLD.input, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.input, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.input, 1, 4) = X'FF534B52' AND id = substr(NEW.input, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.input, 1, 4) = X'FF534B52' AND id = substr(OLD.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_d AFTER DELETE ON sk_workflow_steps
WHEN substr(OLD.input, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.input, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_i AFTER INSERT ON sk_workflow_steps
WHEN substr(NEW.output, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_u AFTER UPDATE OF output ON sk_workflow_steps
WHEN NEW.output IS NOT OLD.output AND (substr(NEW.output, 1, 4) = X'FF534B52' OR substr(OLD.output, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.output, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.output, 1, 4) = X'FF534B52' AND id = substr(NEW.output, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.output, 1, 4) = X'FF534B52' AND id = substr(OLD.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_d AFTER DELETE ON sk_workflow_steps
WHEN substr(OLD.output, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.output, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_i AFTER INSERT ON sk_workflow_events
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_u AFTER UPDATE OF data ON sk_workflow_events
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_d AFTER DELETE ON sk_workflow_events
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_events_data_i AFTER INSERT ON sk_events
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_events_data_u AFTER UPDATE OF data ON sk_events
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_events_data_d AFTER DELETE ON sk_events
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_i AFTER INSERT ON sk_event_snapshots
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_u AFTER UPDATE OF data ON sk_event_snapshots
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_d AFTER DELETE ON sk_event_snapshots
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_i AFTER INSERT ON sk_workflow_messages
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_u AFTER UPDATE OF data ON sk_workflow_messages
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_d AFTER DELETE ON sk_workflow_messages
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_i AFTER INSERT ON sk_workflow_updates
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_u AFTER UPDATE OF data ON sk_workflow_updates
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_d AFTER DELETE ON sk_workflow_updates
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_i AFTER INSERT ON sk_workflow_updates
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_u AFTER UPDATE OF result ON sk_workflow_updates
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_d AFTER DELETE ON sk_workflow_updates
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_i AFTER INSERT ON sk_workflow_values
WHEN substr(NEW.value, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_u AFTER UPDATE OF value ON sk_workflow_values
WHEN NEW.value IS NOT OLD.value AND (substr(NEW.value, 1, 4) = X'FF534B52' OR substr(OLD.value, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.value, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.value, 1, 4) = X'FF534B52' AND id = substr(NEW.value, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.value, 1, 4) = X'FF534B52' AND id = substr(OLD.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_d AFTER DELETE ON sk_workflow_values
WHEN substr(OLD.value, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.value, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_schedules_input_i AFTER INSERT ON sk_schedules
WHEN substr(NEW.input, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_schedules_input_u AFTER UPDATE OF input ON sk_schedules
WHEN NEW.input IS NOT OLD.input AND (substr(NEW.input, 1, 4) = X'FF534B52' OR substr(OLD.input, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.input, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.input, 1, 4) = X'FF534B52' AND id = substr(NEW.input, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.input, 1, 4) = X'FF534B52' AND id = substr(OLD.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_schedules_input_d AFTER DELETE ON sk_schedules
WHEN substr(OLD.input, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.input, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_entities_state_i AFTER INSERT ON sk_entities
WHEN substr(NEW.state, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.state, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.state, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entities_state_u AFTER UPDATE OF state ON sk_entities
WHEN NEW.state IS NOT OLD.state AND (substr(NEW.state, 1, 4) = X'FF534B52' OR substr(OLD.state, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.state, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.state, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.state, 1, 4) = X'FF534B52' AND id = substr(NEW.state, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.state, 1, 4) = X'FF534B52' AND id = substr(OLD.state, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entities_state_d AFTER DELETE ON sk_entities
WHEN substr(OLD.state, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.state, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_i AFTER INSERT ON sk_entity_calls
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_u AFTER UPDATE OF result ON sk_entity_calls
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_d AFTER DELETE ON sk_entity_calls
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_i AFTER INSERT ON sk_workflow_streams
WHEN substr(NEW.value, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_u AFTER UPDATE OF value ON sk_workflow_streams
WHEN NEW.value IS NOT OLD.value AND (substr(NEW.value, 1, 4) = X'FF534B52' OR substr(OLD.value, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.value, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.value, 1, 4) = X'FF534B52' AND id = substr(NEW.value, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.value, 1, 4) = X'FF534B52' AND id = substr(OLD.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_d AFTER DELETE ON sk_workflow_streams
WHEN substr(OLD.value, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.value, 5, 16); END;

-- Uploads through signed URLs (POST /v1/uploads, then a PUT of the file to its URL):
-- pending until the file is written, then complete with its blob (a counted reference,
-- as in every payload column), size and SHA-256; started holds the workflow id or
-- message id it started once that is done (a complete upload not started yet is
-- started by the upkeep: the start is idempotent). The upkeep forgets pending uploads
-- past expires_at, and complete ones whose workflow or message is gone, checking the
-- least recently checked first (checked_at); the blob goes with the row.
CREATE TABLE sk_uploads (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    state        TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target       TEXT NOT NULL,
    max_bytes    INTEGER NOT NULL,
    sha256       TEXT,
    content_type TEXT,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL,
    blob         BLOB,
    size         INTEGER,
    digest       TEXT,
    completed_at REAL,
    started      TEXT,
    checked_at   REAL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    start_error  TEXT,
    retry_at     REAL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX sk_uploads_pending ON sk_uploads (expires_at) WHERE state = 'pending';
CREATE INDEX sk_uploads_unstarted ON sk_uploads (namespace, retry_at)
    WHERE state = 'complete' AND started IS NULL;
CREATE INDEX sk_uploads_failed ON sk_uploads (retry_at) WHERE state = 'failed';
CREATE INDEX sk_uploads_checked ON sk_uploads (checked_at) WHERE started IS NOT NULL;

CREATE TRIGGER sk_blob_ref_sk_uploads_blob_i AFTER INSERT ON sk_uploads
WHEN substr(NEW.blob, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.blob, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.blob, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_u AFTER UPDATE OF blob ON sk_uploads
WHEN NEW.blob IS NOT OLD.blob AND (substr(NEW.blob, 1, 4) = X'FF534B52' OR substr(OLD.blob, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.blob, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.blob, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.blob, 1, 4) = X'FF534B52' AND id = substr(NEW.blob, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.blob, 1, 4) = X'FF534B52' AND id = substr(OLD.blob, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_d AFTER DELETE ON sk_uploads
WHEN substr(OLD.blob, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.blob, 5, 16); END;

-- The W3C trace context of the span that started a workflow (0028 / 0030): its runs' spans
-- are children of it. NULL without traces (observability/tracing.py).
ALTER TABLE sk_workflows ADD COLUMN trace TEXT;
