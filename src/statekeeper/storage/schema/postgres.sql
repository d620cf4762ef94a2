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

-- A whole state transaction in one statement, so it costs one round trip.
-- Each op i: kind 'put' or 'delete', with its key, new value/etag/expiry/key id,
-- and its condition (if_match, or only_if_absent). A failed condition raises
-- SQLSTATE SK409 (ETag mismatch) or SK412 (key exists) with the 0-based op index
-- as DETAIL, which rolls the whole statement back.
CREATE FUNCTION sk_state_apply(
    p_namespace TEXT,
    p_now       DOUBLE PRECISION,
    p_kinds     TEXT[],
    p_keys      TEXT[],
    p_values    BYTEA[],
    p_etags     TEXT[],
    p_expires   DOUBLE PRECISION[],
    p_key_ids   TEXT[],
    p_if_match  TEXT[],
    p_absent    BOOLEAN[]
) RETURNS BOOLEAN[] LANGUAGE plpgsql AS $$
DECLARE
    results BOOLEAN[] := '{}';
    old_expiry DOUBLE PRECISION;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
        IF p_kinds[i] = 'put' THEN
            IF p_if_match[i] IS NOT NULL THEN
                UPDATE sk_state
                SET value = p_values[i], etag = p_etags[i],
                    expires_at = p_expires[i], key_id = p_key_ids[i]
                WHERE namespace = p_namespace AND key = p_keys[i] AND etag = p_if_match[i]
                  AND (expires_at IS NULL OR expires_at > p_now);
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'SK409', MESSAGE = 'etag mismatch',
                        DETAIL = (i - 1)::TEXT;
                END IF;
            ELSIF p_absent[i] THEN
                INSERT INTO sk_state (namespace, key, value, etag, expires_at, key_id)
                VALUES (p_namespace, p_keys[i], p_values[i], p_etags[i], p_expires[i], p_key_ids[i])
                ON CONFLICT (namespace, key) DO UPDATE
                SET value = excluded.value, etag = excluded.etag,
                    expires_at = excluded.expires_at, key_id = excluded.key_id
                WHERE sk_state.expires_at IS NOT NULL AND sk_state.expires_at <= p_now;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'SK412', MESSAGE = 'key exists',
                        DETAIL = (i - 1)::TEXT;
                END IF;
            ELSE
                INSERT INTO sk_state (namespace, key, value, etag, expires_at, key_id)
                VALUES (p_namespace, p_keys[i], p_values[i], p_etags[i], p_expires[i], p_key_ids[i])
                ON CONFLICT (namespace, key) DO UPDATE
                SET value = excluded.value, etag = excluded.etag,
                    expires_at = excluded.expires_at, key_id = excluded.key_id;
            END IF;
            results := results || TRUE;
        ELSIF p_if_match[i] IS NOT NULL THEN
            DELETE FROM sk_state
            WHERE namespace = p_namespace AND key = p_keys[i] AND etag = p_if_match[i]
              AND (expires_at IS NULL OR expires_at > p_now);
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'SK409', MESSAGE = 'etag mismatch',
                    DETAIL = (i - 1)::TEXT;
            END IF;
            results := results || TRUE;
        ELSE
            DELETE FROM sk_state WHERE namespace = p_namespace AND key = p_keys[i]
            RETURNING expires_at INTO old_expiry;
            results := results || (FOUND AND (old_expiry IS NULL OR old_expiry > p_now));
        END IF;
    END LOOP;
    RETURN results;
END;
$$;

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
    dead_at        DOUBLE PRECISION,
    reply_to       TEXT
);

-- The ready order: receive walks this index from its start, in delivery order (due time,
-- then enqueue order), and stops after the messages it takes. Leased messages are in it
-- under their lease end, so an expired lease comes back in order and live ones are out
-- of the range a receive reads. Messages waiting behind their group are not in it.
CREATE INDEX sk_messages_due ON sk_messages (namespace, queue, available_at, seq)
    WHERE state IN ('ready', 'leased');

-- Messages waiting behind the head of their group, in group order: the next one is
-- promoted when the head leaves.
CREATE INDEX sk_messages_waiting ON sk_messages (namespace, queue, group_id, seq)
    WHERE state = 'waiting';

CREATE INDEX sk_messages_dead ON sk_messages (namespace, queue, seq) WHERE state = 'dead';

-- Live (not dead-lettered) messages per group. Every message joining or leaving a group
-- updates its row, which serialises them: exactly one live message of a group is its
-- head (ready or leased), the others wait.
CREATE TABLE sk_queue_groups (
    namespace TEXT NOT NULL,
    queue     TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    live      INTEGER NOT NULL,
    PRIMARY KEY (namespace, queue, group_id)
);

-- A grouped message becomes live (sent, or redriven): it heads its group if the group
-- has no other live message, else it waits.
CREATE FUNCTION sk_queue_group_join() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    members INTEGER;
BEGIN
    INSERT INTO sk_queue_groups AS g (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = g.live + 1
    RETURNING g.live INTO members;
    NEW.state := CASE WHEN members > 1 THEN 'waiting' ELSE 'ready' END;
    RETURN NEW;
END;
$$;

-- A grouped message leaves (acknowledged, dead-lettered, purged): if it was the head,
-- the group's next waiting message becomes ready. A VOLATILE function's statements each
-- take a new snapshot, so a message that joined concurrently (its join committed before
-- this update of the group row could lock it) is seen and promoted.
CREATE FUNCTION sk_queue_group_leave() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    members INTEGER;
BEGIN
    UPDATE sk_queue_groups SET live = live - 1
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id
    RETURNING live INTO members;
    IF members IS NULL OR members <= 0 THEN
        DELETE FROM sk_queue_groups
        WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id;
    ELSIF OLD.state <> 'waiting' THEN
        UPDATE sk_messages SET state = 'ready'
        WHERE seq = (
            SELECT seq FROM sk_messages
            WHERE namespace = OLD.namespace AND queue = OLD.queue
              AND group_id = OLD.group_id AND state = 'waiting'
            ORDER BY seq LIMIT 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sk_messages_group_send BEFORE INSERT ON sk_messages
    FOR EACH ROW WHEN (NEW.group_id IS NOT NULL AND NEW.state <> 'dead')
    EXECUTE FUNCTION sk_queue_group_join();

CREATE TRIGGER sk_messages_group_revive BEFORE UPDATE OF state ON sk_messages
    FOR EACH ROW WHEN (NEW.group_id IS NOT NULL AND OLD.state = 'dead' AND NEW.state <> 'dead')
    EXECUTE FUNCTION sk_queue_group_join();

CREATE TRIGGER sk_messages_group_ack AFTER DELETE ON sk_messages
    FOR EACH ROW WHEN (OLD.group_id IS NOT NULL AND OLD.state <> 'dead')
    EXECUTE FUNCTION sk_queue_group_leave();

CREATE TRIGGER sk_messages_group_dead AFTER UPDATE OF state ON sk_messages
    FOR EACH ROW WHEN (OLD.group_id IS NOT NULL AND OLD.state <> 'dead' AND NEW.state = 'dead')
    EXECUTE FUNCTION sk_queue_group_leave();

CREATE TABLE sk_queue_dedup (
    namespace  TEXT NOT NULL,
    queue      TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (namespace, queue, dedup_id)
);

CREATE INDEX sk_queue_dedup_expiry ON sk_queue_dedup (expires_at);

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
    completed_at   DOUBLE PRECISION NOT NULL,
    reply_to       TEXT,
    result         BYTEA
);

CREATE INDEX sk_message_archive_time ON sk_message_archive (namespace, queue, completed_at, id);

CREATE INDEX sk_message_archive_retention ON sk_message_archive (completed_at);

CREATE TABLE sk_idempotency (
    namespace        TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    state            TEXT NOT NULL,
    owner            TEXT,
    lease_expires_at DOUBLE PRECISION,
    result           BYTEA,
    expires_at       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE INDEX sk_idempotency_expiry ON sk_idempotency (expires_at);

-- Durable workflows: one row per workflow, its journal of steps, and the events
-- (including callbacks and children's completions) delivered to it.
-- wake_at: when the workflow may run next (NULL: only an event can wake it).
CREATE TABLE sk_workflows (
    namespace        TEXT NOT NULL,
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            BYTEA NOT NULL,
    output           BYTEA,
    error            TEXT,
    owner            TEXT,
    fence            BIGINT NOT NULL DEFAULT 0,
    lease_expires_at DOUBLE PRECISION,
    wake_at          DOUBLE PRECISION,
    waiting_for      TEXT,
    parent_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, id)
);

-- Workflows due to run, by time (wake_at is NULL once finished, or while only an
-- event can wake it); keyed on wake_at, not the status, so that no point statement
-- on one workflow matches this partial index's predicate.
CREATE INDEX sk_workflows_due ON sk_workflows (namespace, wake_at) WHERE wake_at IS NOT NULL;

CREATE INDEX sk_workflows_listing ON sk_workflows (namespace, created_at, id);

CREATE INDEX sk_workflows_by_status ON sk_workflows (namespace, (status || ''), created_at, id);

CREATE INDEX sk_workflows_by_name ON sk_workflows (namespace, (name || ''), created_at, id);

CREATE TABLE sk_workflow_steps (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    input       BYTEA,
    output      BYTEA,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  DOUBLE PRECISION,
    finished_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, position)
);

CREATE TABLE sk_workflow_events (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    data        BYTEA,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, name)
);

-- Hot tables are vacuumed on a count of dead rows, not a share of the table, and without
-- the cost delay: a queue's table is small when drained, and its dead rows are what a
-- receive would otherwise wade through. Room on each page lets a workflow's checkpoint
-- (which changes no indexed column) update its row in place (HOT).
ALTER TABLE sk_messages SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sk_queue_groups SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sk_workflows SET (
    fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sk_idempotency SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sk_queue_dedup SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0);
