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
    -- Several keys: take a lock per key first, in one global order (by the hash that
    -- names it), so transactions writing the same keys in different orders wait for
    -- one another instead of deadlocking. The locks end with the transaction.
    IF coalesce(array_length(p_keys, 1), 0) > 1 THEN
        PERFORM pg_advisory_xact_lock(1397445460, h)  -- 'SKST': statekeeper state keys
        FROM (SELECT DISTINCT hashtext(p_namespace || chr(31) || k) AS h
              FROM unnest(p_keys) AS k ORDER BY 1) AS ordered;
    END IF;
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
    cancel_requested INTEGER NOT NULL DEFAULT 0,  -- 0, 1 cancel, 2 pause (0014)
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    deadline         DOUBLE PRECISION,
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

-- The unit of work (storage/unit.py): every intent of one commit in one statement, so
-- that a state write, the messages it causes, a message settled under its lease and a
-- workflow step recorded under its fence cost one round trip together, all or nothing.
-- A lease or fence no longer held raises SK410, which rolls everything back; a state
-- condition that fails raises SK409 / SK412 (from sk_state_apply), likewise.
CREATE FUNCTION sk_commit(
    p_namespace   TEXT,
    p_now         DOUBLE PRECISION,
    -- a workflow step, recorded under its fence (p_step_id NULL: none)
    p_step_id     TEXT,
    p_fence       BIGINT,
    p_position    INTEGER,
    p_step_kind   TEXT,
    p_step_name   TEXT,
    p_step_input  BYTEA,
    p_step_output BYTEA,
    p_step_error  TEXT,
    p_attempts    INTEGER,
    p_started_at  DOUBLE PRECISION,
    p_lease_end   DOUBLE PRECISION,
    -- a leased message settled: 'ack', 'retry' or 'dead' (NULL: none)
    p_settle      TEXT,
    p_message_id  TEXT,
    p_lease_token TEXT,
    p_archive     BOOLEAN,
    p_result      BYTEA,
    p_error       TEXT,
    p_retry_at    DOUBLE PRECISION,
    -- state writes, as sk_state_apply takes them (empty arrays: none)
    p_kinds       TEXT[],
    p_keys        TEXT[],
    p_values      BYTEA[],
    p_etags       TEXT[],
    p_expires     DOUBLE PRECISION[],
    p_key_ids     TEXT[],
    p_if_match    TEXT[],
    p_absent      BOOLEAN[],
    -- messages sent (the outbox)
    p_m_ids       TEXT[],
    p_m_queues    TEXT[],
    p_m_bodies    BYTEA[],
    p_m_attributes TEXT[],
    p_m_correlation_ids TEXT[],
    p_m_groups    TEXT[],
    p_m_available DOUBLE PRECISION[],
    p_m_reply_to  TEXT[]
) RETURNS TABLE (cancel_requested INTEGER, writes BOOLEAN[]) LANGUAGE plpgsql AS $$
DECLARE
    v_cancel INTEGER;
    v_settled INTEGER;
    v_writes BOOLEAN[] := '{}';
BEGIN
    IF p_step_id IS NOT NULL THEN
        UPDATE sk_workflows w SET lease_expires_at = p_lease_end, updated_at = p_now
        WHERE w.namespace = p_namespace AND w.id = p_step_id AND w.fence = p_fence
          AND w.status = 'running'
        RETURNING w.cancel_requested INTO v_cancel;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410', MESSAGE = 'the workflow''s lease is lost';
        END IF;
        INSERT INTO sk_workflow_steps AS s (namespace, workflow_id, position, kind, name,
                                            input, output, error, attempts, started_at,
                                            finished_at)
        VALUES (p_namespace, p_step_id, p_position, p_step_kind, p_step_name, p_step_input,
                p_step_output, p_step_error, p_attempts, p_started_at, p_now)
        ON CONFLICT (namespace, workflow_id, position) DO UPDATE
        SET kind = EXCLUDED.kind, input = EXCLUDED.input, output = EXCLUDED.output,
            error = EXCLUDED.error, attempts = EXCLUDED.attempts,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at
        WHERE s.kind = 'attempt';
    END IF;
    IF p_settle = 'ack' THEN
        WITH done AS (
            DELETE FROM sk_messages m WHERE m.id = p_message_id AND m.lease_token = p_lease_token
            RETURNING m.id, m.namespace, m.queue, m.body, m.attributes, m.correlation_id,
                      m.group_id, m.attempts, m.enqueued_at, m.reply_to
        ), archived AS (
            INSERT INTO sk_message_archive (id, namespace, queue, body, attributes,
                                            correlation_id, group_id, attempts, enqueued_at,
                                            completed_at, reply_to, result)
            SELECT d.id, d.namespace, d.queue, d.body, d.attributes, d.correlation_id,
                   d.group_id, d.attempts, d.enqueued_at, p_now, d.reply_to, p_result
            FROM done d WHERE p_archive
            ON CONFLICT (id) DO NOTHING
        )
        SELECT count(*) INTO v_settled FROM done;
        IF v_settled = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410', MESSAGE = 'the message''s lease is lost';
        END IF;
    ELSIF p_settle IS NOT NULL THEN
        UPDATE sk_messages m
        SET state = CASE WHEN p_settle = 'dead' THEN 'dead' ELSE 'ready' END,
            dead_at = CASE WHEN p_settle = 'dead' THEN p_now END,
            available_at = CASE WHEN p_settle = 'dead' THEN m.available_at ELSE p_retry_at END,
            last_error = p_error, lease_token = NULL
        WHERE m.id = p_message_id AND m.lease_token = p_lease_token;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410', MESSAGE = 'the message''s lease is lost';
        END IF;
    END IF;
    IF coalesce(array_length(p_keys, 1), 0) > 0 THEN
        v_writes := sk_state_apply(p_namespace, p_now, p_kinds, p_keys, p_values, p_etags,
                                   p_expires, p_key_ids, p_if_match, p_absent);
    END IF;
    IF coalesce(array_length(p_m_ids, 1), 0) > 0 THEN
        -- Grouped messages take their groups' rows (a trigger) in group order, as every
        -- sender does, so that no two transactions deadlock; each group keeps its order.
        INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id,
                                 group_id, state, available_at, attempts, enqueued_at, reply_to)
        SELECT m.id, p_namespace, m.queue, m.body, m.attributes, m.correlation_id, m.group_id,
               'ready', m.available_at, 0, p_now, m.reply_to
        FROM unnest(p_m_ids, p_m_queues, p_m_bodies, p_m_attributes, p_m_correlation_ids,
                    p_m_groups, p_m_available, p_m_reply_to) WITH ORDINALITY
             AS m(id, queue, body, attributes, correlation_id, group_id, available_at,
                  reply_to, ord)
        ORDER BY m.group_id NULLS FIRST, m.ord;
    END IF;
    RETURN QUERY SELECT v_cancel, v_writes;
END;
$$;

CREATE TABLE sk_workflow_definitions (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    definition TEXT,
    revision   BIGINT NOT NULL DEFAULT 1,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE sk_state_machines (
    namespace  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, kind, name)
);

-- The event store (events/, storage/event_ops.py). Every namespace has one global log:
-- sk_event_log holds the last global position given out, and its row stays locked
-- from the moment an append takes positions until that append commits, so appends
-- commit in position order and a reader of the log never sees a lower position
-- commit after a higher one (decision 0010). sk_event_streams holds each stream's
-- version (its last stream position, 1-based), the row that expected versions are
-- checked against and that serializes appends to one stream. Names sort byte by byte
-- (COLLATE "C"), as on SQLite, so a prefix lists the same streams on both.
CREATE TABLE sk_event_log (
    namespace TEXT PRIMARY KEY,
    position  BIGINT NOT NULL
);

CREATE TABLE sk_event_streams (
    namespace  TEXT NOT NULL,
    stream     TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, stream)
);

CREATE TABLE sk_events (
    namespace   TEXT NOT NULL,
    position    BIGINT NOT NULL,
    stream      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    category    TEXT NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    data        BYTEA NOT NULL,
    metadata    TEXT,
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, position)
);
CREATE UNIQUE INDEX sk_events_stream ON sk_events (namespace, stream, version);
CREATE INDEX sk_events_category ON sk_events (namespace, category, position);

-- The latest snapshot of a stream (aggregates): its state at ``version``.
CREATE TABLE sk_event_snapshots (
    namespace   TEXT NOT NULL,
    stream      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    type        TEXT NOT NULL,
    data        BYTEA NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, stream)
);

-- A named reader of the log: its checkpoint (the last global position it handled),
-- the lease of the process that holds it, and the event it is failing on.
CREATE TABLE sk_subscriptions (
    namespace        TEXT NOT NULL,
    name             TEXT COLLATE "C" NOT NULL,
    position         BIGINT NOT NULL DEFAULT 0,
    lease_token      TEXT,
    lease_expires_at DOUBLE PRECISION,
    holder           TEXT,
    failing_position BIGINT,
    failures         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    parked           BIGINT NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Events a subscription gave up on after its retries, with the error.
CREATE TABLE sk_parked_events (
    namespace    TEXT NOT NULL,
    subscription TEXT NOT NULL,
    position     BIGINT NOT NULL,
    error        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    parked_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, subscription, position)
);

-- A projection's generation that readers use, and the one being rebuilt (if any).
CREATE TABLE sk_projections (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    generation INTEGER NOT NULL,
    building   INTEGER,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Append events to streams in one statement. Per stream: its name, category, expected
-- version (-1 any, -2 the stream exists, 0 no stream, n exactly n) and how many of the
-- events are its (in order). p_versions, when given, are the events' own stream
-- versions (recorders that choose them; p_expected is then not checked, and a taken
-- version is a unique violation). A wrong expected version raises SK411 with the
-- stream's index and its actual version as DETAIL. Returns the first global position
-- and each stream's version after the append.
CREATE FUNCTION sk_events_append(
    p_namespace  TEXT,
    p_now        DOUBLE PRECISION,
    p_streams    TEXT[],
    p_categories TEXT[],
    p_expected   BIGINT[],
    p_counts     INTEGER[],
    p_ids        TEXT[],
    p_types      TEXT[],
    p_data       BYTEA[],
    p_metadata   TEXT[],
    p_versions   BIGINT[],
    OUT first_position BIGINT,
    OUT stream_versions BIGINT[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_total INTEGER := coalesce(array_length(p_ids, 1), 0);
    v_count INTEGER := coalesce(array_length(p_streams, 1), 0);
    v_offsets INTEGER[] := '{}';
    v_after BIGINT[];
    v_streams TEXT[] := '{}';
    v_categories TEXT[] := '{}';
    v_versions BIGINT[] := '{}';
    v_version BIGINT;
    v_actual BIGINT;
    v_last BIGINT;
    v_at INTEGER := 0;
    i INTEGER;
    n INTEGER;
BEGIN
    stream_versions := '{}';
    IF v_total = 0 THEN
        RETURN;
    END IF;
    FOR i IN 1 .. v_count LOOP
        v_offsets := v_offsets || v_at;
        v_at := v_at + p_counts[i];
    END LOOP;
    v_after := array_fill(NULL::BIGINT, ARRAY[v_count]);
    -- Streams in name order: every append takes its streams' rows in one order, so no
    -- two appends to the same streams wait for each other in a circle.
    FOR i IN SELECT t.ord FROM unnest(p_streams) WITH ORDINALITY AS t(stream, ord)
             ORDER BY t.stream, t.ord LOOP
        n := p_counts[i];
        IF p_versions IS NOT NULL THEN
            INSERT INTO sk_event_streams AS s (namespace, stream, version, updated_at)
            SELECT p_namespace, p_streams[i], max(v), p_now
            FROM unnest(p_versions[v_offsets[i] + 1 : v_offsets[i] + n]) AS v
            ON CONFLICT (namespace, stream) DO UPDATE
            SET version = greatest(s.version, EXCLUDED.version), updated_at = p_now
            RETURNING s.version INTO v_version;
        ELSIF p_expected[i] = 0 THEN
            INSERT INTO sk_event_streams (namespace, stream, version, updated_at)
            VALUES (p_namespace, p_streams[i], n, p_now)
            ON CONFLICT (namespace, stream) DO NOTHING
            RETURNING version INTO v_version;
        ELSIF p_expected[i] > 0 THEN
            UPDATE sk_event_streams SET version = version + n, updated_at = p_now
            WHERE namespace = p_namespace AND stream = p_streams[i] AND version = p_expected[i]
            RETURNING version INTO v_version;
        ELSIF p_expected[i] = -2 THEN
            UPDATE sk_event_streams SET version = version + n, updated_at = p_now
            WHERE namespace = p_namespace AND stream = p_streams[i]
            RETURNING version INTO v_version;
        ELSE
            INSERT INTO sk_event_streams AS s (namespace, stream, version, updated_at)
            VALUES (p_namespace, p_streams[i], n, p_now)
            ON CONFLICT (namespace, stream) DO UPDATE
            SET version = s.version + n, updated_at = p_now
            RETURNING s.version INTO v_version;
        END IF;
        IF NOT FOUND THEN
            SELECT s.version INTO v_actual FROM sk_event_streams s
            WHERE s.namespace = p_namespace AND s.stream = p_streams[i];
            RAISE EXCEPTION USING ERRCODE = 'SK411', MESSAGE = 'wrong expected version',
                DETAIL = format('%s %s', i - 1, coalesce(v_actual, 0));
        END IF;
        v_after[i] := v_version;
    END LOOP;
    -- The events in the order they were given: their streams, categories and versions.
    FOR i IN 1 .. v_count LOOP
        n := p_counts[i];
        stream_versions := stream_versions || v_after[i];
        v_streams := v_streams || array_fill(p_streams[i], ARRAY[n]);
        v_categories := v_categories || array_fill(p_categories[i], ARRAY[n]);
        IF p_versions IS NULL THEN
            v_versions := v_versions
                || ARRAY(SELECT generate_series(v_after[i] - n + 1, v_after[i]));
        END IF;
    END LOOP;
    IF p_versions IS NOT NULL THEN
        v_versions := p_versions;
    END IF;
    -- Last: the log's row, locked from here until COMMIT (commit order = position order).
    INSERT INTO sk_event_log AS l (namespace, position) VALUES (p_namespace, v_total)
    ON CONFLICT (namespace) DO UPDATE SET position = l.position + v_total
    RETURNING l.position INTO v_last;
    INSERT INTO sk_events (namespace, position, stream, version, category, id, type, data,
                           metadata, recorded_at)
    SELECT p_namespace, v_last - v_total + e.ord, e.stream, e.version, e.category, e.id,
           e.type, e.data, e.metadata, p_now
    FROM unnest(v_streams, v_versions, v_categories, p_ids, p_types, p_data, p_metadata)
         WITH ORDINALITY AS e(stream, version, category, id, type, data, metadata, ord);
    first_position := v_last - v_total + 1;
END;
$$;

-- A unit of work with a subscription's checkpoint and appended events: sk_commit's
-- intents (when there are any), the checkpoint advanced under the subscription's lease
-- (SK410 if it is no longer held; p_park: the event at p_checkpoint is parked with
-- p_park as its error) or, without a lease token, a tracking position moved strictly up
-- (SK413 if it is not), then the appends (last, so the log's row is locked briefly).
CREATE FUNCTION sk_commit_events(
    p_namespace   TEXT,
    p_now         DOUBLE PRECISION,
    p_step_id     TEXT,
    p_fence       BIGINT,
    p_position    INTEGER,
    p_step_kind   TEXT,
    p_step_name   TEXT,
    p_step_input  BYTEA,
    p_step_output BYTEA,
    p_step_error  TEXT,
    p_attempts    INTEGER,
    p_started_at  DOUBLE PRECISION,
    p_lease_end   DOUBLE PRECISION,
    p_settle      TEXT,
    p_message_id  TEXT,
    p_lease_token TEXT,
    p_archive     BOOLEAN,
    p_result      BYTEA,
    p_error       TEXT,
    p_retry_at    DOUBLE PRECISION,
    p_kinds       TEXT[],
    p_keys        TEXT[],
    p_values      BYTEA[],
    p_etags       TEXT[],
    p_expires     DOUBLE PRECISION[],
    p_key_ids     TEXT[],
    p_if_match    TEXT[],
    p_absent      BOOLEAN[],
    p_m_ids       TEXT[],
    p_m_queues    TEXT[],
    p_m_bodies    BYTEA[],
    p_m_attributes TEXT[],
    p_m_correlation_ids TEXT[],
    p_m_groups    TEXT[],
    p_m_available DOUBLE PRECISION[],
    p_m_reply_to  TEXT[],
    -- a subscription's checkpoint (p_subscription NULL: none)
    p_subscription TEXT,
    p_sub_token   TEXT,
    p_checkpoint  BIGINT,
    p_park        TEXT,
    p_park_attempts INTEGER,
    -- events appended, as sk_events_append takes them
    p_streams     TEXT[],
    p_categories  TEXT[],
    p_expected    BIGINT[],
    p_counts      INTEGER[],
    p_ids         TEXT[],
    p_types       TEXT[],
    p_data        BYTEA[],
    p_metadata    TEXT[],
    p_versions    BIGINT[]
) RETURNS TABLE (cancel_requested INTEGER, writes BOOLEAN[], first_position BIGINT,
                stream_versions BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    v_cancel INTEGER;
    v_writes BOOLEAN[] := '{}';
    v_first BIGINT;
    v_versions BIGINT[];
BEGIN
    IF p_step_id IS NOT NULL OR p_settle IS NOT NULL
       OR coalesce(array_length(p_keys, 1), 0) > 0
       OR coalesce(array_length(p_m_ids, 1), 0) > 0 THEN
        SELECT c.cancel_requested, c.writes INTO v_cancel, v_writes
        FROM sk_commit(p_namespace, p_now, p_step_id, p_fence, p_position, p_step_kind,
                       p_step_name, p_step_input, p_step_output, p_step_error, p_attempts,
                       p_started_at, p_lease_end, p_settle, p_message_id, p_lease_token,
                       p_archive, p_result, p_error, p_retry_at, p_kinds, p_keys, p_values,
                       p_etags, p_expires, p_key_ids, p_if_match, p_absent, p_m_ids,
                       p_m_queues, p_m_bodies, p_m_attributes, p_m_correlation_ids,
                       p_m_groups, p_m_available, p_m_reply_to) AS c;
    END IF;
    IF p_subscription IS NOT NULL AND p_sub_token IS NULL THEN
        -- A tracking position (no lease): the row created, or moved strictly up.
        INSERT INTO sk_subscriptions AS s (namespace, name, position, created_at, updated_at)
        VALUES (p_namespace, p_subscription, p_checkpoint, p_now, p_now)
        ON CONFLICT (namespace, name) DO UPDATE
        SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
        WHERE s.position < EXCLUDED.position;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SK413',
                MESSAGE = 'the position is tracked already';
        END IF;
    ELSIF p_subscription IS NOT NULL THEN
        UPDATE sk_subscriptions s
        SET position = greatest(s.position, p_checkpoint), failing_position = NULL,
            failures = 0, last_error = NULL, updated_at = p_now,
            parked = s.parked + CASE WHEN p_park IS NULL THEN 0 ELSE 1 END
        WHERE s.namespace = p_namespace AND s.name = p_subscription
          AND s.lease_token = p_sub_token;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410',
                MESSAGE = 'the subscription''s lease is lost';
        END IF;
        IF p_park IS NOT NULL THEN
            INSERT INTO sk_parked_events (namespace, subscription, position, error, attempts,
                                          parked_at)
            VALUES (p_namespace, p_subscription, p_checkpoint, p_park, p_park_attempts, p_now)
            ON CONFLICT (namespace, subscription, position) DO NOTHING;
        END IF;
    END IF;
    IF coalesce(array_length(p_ids, 1), 0) > 0 THEN
        SELECT a.first_position, a.stream_versions INTO v_first, v_versions
        FROM sk_events_append(p_namespace, p_now, p_streams, p_categories, p_expected,
                              p_counts, p_ids, p_types, p_data, p_metadata, p_versions) AS a;
    END IF;
    RETURN QUERY SELECT v_cancel, v_writes, v_first, v_versions;
END;
$$;

-- Workflow versions, forks and retention (issue 12, operations part).
-- version: the application version that started the run (App(version=...), else a hash
-- of the workflow's code); a pinned worker leases only runs of its own versions (and
-- runs with none, started before this migration). purge_at: when a finished run is
-- purged (its finish time plus its retention; NULL: kept), read by upkeep in batches
-- through sk_workflows_expiry. sk_workflows_by_version: the runs of a version that have
-- not finished, the range a version move updates.
ALTER TABLE sk_workflows ADD COLUMN version TEXT;

ALTER TABLE sk_workflows ADD COLUMN purge_at DOUBLE PRECISION;

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
    number_value DOUBLE PRECISION,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
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
    created_at DOUBLE PRECISION NOT NULL,
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
    data        BYTEA,
    sent_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, topic, seq)
);

CREATE TABLE sk_workflow_updates (
    namespace    TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    data         BYTEA,
    status       TEXT NOT NULL,
    result       BYTEA,
    error        TEXT,
    requested_at DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    PRIMARY KEY (namespace, workflow_id, seq)
);

CREATE INDEX sk_workflow_updates_pending ON sk_workflow_updates (namespace, workflow_id, seq)
    WHERE status = 'pending';

CREATE TABLE sk_workflow_values (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BYTEA,
    updated_at  DOUBLE PRECISION NOT NULL,
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
    rate_period         DOUBLE PRECISION,
    key_rate_limit      INTEGER,
    key_rate_period     DOUBLE PRECISION,
    updated_at          DOUBLE PRECISION NOT NULL,
    -- Its start rules (migration 0022/0023 flow_queue_rules): 'reject', 'queue' (singleton),
    -- 'debounce' or NULL; the input field its key is taken from (NULL: none or a function).
    start_rule          TEXT,
    key_field           TEXT,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE sk_flow_runs (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    namespace   TEXT NOT NULL,
    id          TEXT NOT NULL,
    queue       TEXT NOT NULL,
    key         TEXT,
    priority    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    not_before  DOUBLE PRECISION NOT NULL,
    admitted_at DOUBLE PRECISION,
    lock        TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    key_slot    INTEGER,
    PRIMARY KEY (namespace, id)
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

-- A run admitted under a per-key limit holds one of its key's slots (1 to the limit):
-- the database refuses a second holder of a slot, so the limit holds even between
-- admissions that do not take the queue's lock (an end handing its slot on).
CREATE UNIQUE INDEX sk_flow_runs_key_slot ON sk_flow_runs (namespace, queue, key, key_slot)
    WHERE state = 'admitted' AND key_slot IS NOT NULL;

-- Admission, serialized per queue by a transaction-scoped advisory lock (every worker
-- admits through here, so the counts it reads are the committed truth: each statement
-- of a plpgsql function reads a fresh snapshot, taken after the lock). p_released: a run
-- that just ended, whose slot is given back first (its queue is p_queue when that is
-- NULL). Admits up to p_max runs, one at a time (flow_admit of
-- queries/flow.sqlite.sql is the same statement for SQLite); how many (admitted). With
-- p_owner (an end's runner), the first run admitted is leased to that runner if it can
-- run it, and returned (taken_*, with the trace context it was started in, as wf_lease
-- returns a run): the runner runs it next, without a lease of its own.
--
-- An admitted run's end hands its slot to the next waiting run without the lock when
-- the queue has no rate limit: one run out and one in leave the count of admitted runs
-- as it was, whatever else commits meanwhile, and a per-key limit is held by the key's
-- slots (sk_flow_runs_key_slot) rather than by the lock. Ends, the common admission of
-- a busy queue, then do not wait for one another. With no run to hand the slot to, the
-- end takes the lock as any admission does.
--
-- A start that finds its queue full admits nothing and does not take this lock
-- (sk_flow_admit_start): it holds the queue's start gate shared instead, from before it
-- counts until it commits. So an end that gives back a slot of a full queue and finds
-- no run to fill it with takes the gate exclusively (waiting for the starts in flight
-- that counted the queue full) and looks once more: it sees their runs. A start that
-- counted after that end committed sees the open slot and admits itself.
CREATE FUNCTION sk_flow_pass(
    p_namespace TEXT, p_queue TEXT, p_released TEXT, p_now DOUBLE PRECISION, p_max INTEGER,
    p_owner TEXT, p_lease_end DOUBLE PRECISION, p_names TEXT[], p_versions TEXT[],
    p_stamps JSONB
) RETURNS TABLE (
    admitted INTEGER, taken_id TEXT, taken_name TEXT, taken_input BYTEA, taken_fence BIGINT,
    taken_cancel INTEGER, taken_parent TEXT, taken_created DOUBLE PRECISION,
    taken_deadline DOUBLE PRECISION, taken_trace TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    v_queue TEXT := p_queue;
    v_done INTEGER := 0;
    v_admitted BIGINT := 0;
    v_locked BOOLEAN := FALSE;
    v_waited BOOLEAN := FALSE;
    v_looked_again BOOLEAN := FALSE;
    v_picked TEXT;
    v_key TEXT;
    v_slot INTEGER;
    v_passed TEXT[] := '{}';
    v_limits sk_flow_queues%ROWTYPE;
BEGIN
    IF p_released IS NOT NULL THEN
        -- An admitted run's slot is given back at once: giving back never breaks a
        -- limit, and no admission locks an admitted place.
        UPDATE sk_flow_runs SET state = 'done', lock = NULL, key_slot = NULL
        WHERE namespace = p_namespace AND id = p_released AND state = 'admitted'
        RETURNING queue INTO v_queue;
        IF v_queue IS NULL THEN
            -- A waiting place (a run that ends before admission) is read, not locked:
            -- the queue's lock comes before a waiting place is locked (a finish holds
            -- its workflow's row; an end that locked its place first and then waited
            -- for the queue could wait on one that picked that place: a deadlock).
            SELECT queue INTO v_queue FROM sk_flow_runs
            WHERE namespace = p_namespace AND id = p_released AND state = 'waiting';
            IF v_queue IS NULL THEN
                admitted := 0;
                RETURN NEXT;
                RETURN;
            END IF;
            v_waited := TRUE;
        END IF;
    END IF;
    SELECT * INTO v_limits FROM sk_flow_queues WHERE namespace = p_namespace AND name = v_queue;
    IF NOT FOUND THEN
        admitted := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_released IS NULL OR v_waited OR p_max <> 1 OR v_limits.rate_limit IS NOT NULL
            OR v_limits.key_rate_limit IS NOT NULL THEN
        -- The queue's admission lock (sk_flow_admit_start takes the key after it).
        PERFORM pg_advisory_xact_lock(
            1397441100, hashtext(p_namespace || chr(31) || v_queue)
        );
        v_locked := TRUE;
        IF v_waited THEN  -- (admitted since it was read, it gives that slot back)
            UPDATE sk_flow_runs SET state = 'done', lock = NULL, key_slot = NULL
            WHERE namespace = p_namespace AND id = p_released AND state <> 'done';
        END IF;
    END IF;
    WHILE v_done < p_max LOOP
        IF v_limits.concurrency IS NOT NULL THEN
            v_admitted := (
                SELECT count(*) FROM sk_flow_runs a
                WHERE a.namespace = p_namespace AND a.queue = v_queue AND a.state = 'admitted'
            );
            -- (Handing a slot on, too: a queue over its limit without this run, its
            -- limit lowered, does not take the next until enough runs have ended.)
            EXIT WHEN v_admitted >= v_limits.concurrency;
        END IF;
        EXIT WHEN v_limits.rate_limit IS NOT NULL AND (
            SELECT count(*) FROM sk_flow_runs a
            WHERE a.namespace = p_namespace AND a.queue = v_queue
              AND a.admitted_at IS NOT NULL AND a.admitted_at > p_now - v_limits.rate_period
        ) >= v_limits.rate_limit;
        v_picked := NULL;
        SELECT r.id, r.key INTO v_picked, v_key FROM sk_flow_runs r
        WHERE r.namespace = p_namespace AND r.queue = v_queue AND r.state = 'waiting'
          AND r.not_before <= p_now AND r.id <> ALL(v_passed)
          -- Not paused (nor being cancelled: it ends without a slot). A scalar
          -- subquery, not EXISTS: the planner cannot turn it into a join that
          -- reads every workflow of the namespace when its statistics are stale.
          AND (SELECT w.cancel_requested FROM sk_workflows w
               WHERE w.namespace = p_namespace AND w.id = r.id) = 0
          AND (r.key IS NULL OR v_limits.per_key_concurrency IS NULL OR (
              SELECT count(*) FROM sk_flow_runs k
              WHERE k.namespace = p_namespace AND k.queue = v_queue AND k.key = r.key
                AND k.state = 'admitted') < v_limits.per_key_concurrency)
          AND (r.key IS NULL OR v_limits.key_rate_limit IS NULL OR (
              SELECT count(*) FROM sk_flow_runs k
              WHERE k.namespace = p_namespace AND k.queue = v_queue AND k.key = r.key
                AND k.admitted_at IS NOT NULL
                AND k.admitted_at > p_now - v_limits.key_rate_period)
              < v_limits.key_rate_limit)
        ORDER BY r.priority DESC, r.seq
        LIMIT 1
        FOR UPDATE OF r SKIP LOCKED;
        IF v_picked IS NULL THEN
            IF NOT v_locked THEN
                -- No run to hand the slot to: admit under the lock, as any admission.
                PERFORM pg_advisory_xact_lock(
                    1397441100, hashtext(p_namespace || chr(31) || v_queue)
                );
                v_locked := TRUE;
                CONTINUE;
            END IF;
            -- The slot given back was of a full queue: starts in flight may have counted
            -- it full. Once they have committed (the gate, exclusively), look again.
            EXIT WHEN p_released IS NULL OR v_waited OR v_looked_again OR v_done > 0
                OR v_limits.concurrency IS NULL OR v_admitted < v_limits.concurrency - 1;
            PERFORM pg_advisory_xact_lock(
                1397441101, hashtext(p_namespace || chr(31) || v_queue)
            );
            v_looked_again := TRUE;
            CONTINUE;
        END IF;
        v_slot := NULL;
        IF v_key IS NOT NULL AND v_limits.per_key_concurrency IS NOT NULL THEN
            -- The key's first free slot; taken meanwhile by an admission not yet
            -- committed, the run is passed over (another admission took its key's slot).
            -- Runs of the key admitted without a slot of the limit (before the limit was
            -- set, or lowered) hold the last slots: all committed, every admission sees
            -- them, and the slots left are the ones new admissions contend for.
            v_slot := (
                SELECT s FROM generate_series(1, v_limits.per_key_concurrency - (
                    SELECT count(*) FROM sk_flow_runs o
                    WHERE o.namespace = p_namespace AND o.queue = v_queue AND o.key = v_key
                      AND o.state = 'admitted'
                      AND (o.key_slot IS NULL OR o.key_slot > v_limits.per_key_concurrency)
                )) AS s
                WHERE NOT EXISTS (
                    SELECT 1 FROM sk_flow_runs k
                    WHERE k.namespace = p_namespace AND k.queue = v_queue AND k.key = v_key
                      AND k.state = 'admitted' AND k.key_slot = s)
                ORDER BY s LIMIT 1
            );
            IF v_slot IS NULL THEN
                v_passed := v_passed || v_picked;
                CONTINUE;
            END IF;
            BEGIN
                UPDATE sk_flow_runs
                SET state = 'admitted', admitted_at = p_now, key_slot = v_slot,
                    lock = CASE WHEN lock LIKE 'd:%' THEN NULL ELSE lock END
                WHERE namespace = p_namespace AND id = v_picked;
            EXCEPTION WHEN unique_violation THEN
                v_passed := v_passed || v_picked;
                CONTINUE;
            END;
        ELSE
            UPDATE sk_flow_runs
            SET state = 'admitted', admitted_at = p_now, key_slot = NULL,
                lock = CASE WHEN lock LIKE 'd:%' THEN NULL ELSE lock END
            WHERE namespace = p_namespace AND id = v_picked;
        END IF;
        IF p_owner IS NOT NULL AND taken_id IS NULL THEN
            -- Taken by the runner whose run just ended (p_owner), as its lease would
            -- take it (wf_lease: a workflow it runs, of a version it runs, stamped with
            -- its version if it has none): no lease of its own, no wait for one.
            UPDATE sk_workflows w
            SET status = 'running', owner = p_owner, fence = w.fence + 1,
                lease_expires_at = p_lease_end, wake_at = p_lease_end, updated_at = p_now,
                version = coalesce(w.version, p_stamps ->> w.name)
            WHERE w.namespace = p_namespace AND w.id = v_picked AND w.status = 'pending'
              AND w.cancel_requested = 0 AND w.name = ANY(p_names)
              AND (w.version IS NULL OR p_versions IS NULL OR w.version = ANY(p_versions))
            RETURNING w.id, w.name, w.input, w.fence, w.cancel_requested, w.parent_id,
                      w.created_at, w.deadline, w.trace
            INTO taken_id, taken_name, taken_input, taken_fence, taken_cancel, taken_parent,
                 taken_created, taken_deadline, taken_trace;
        END IF;
        IF taken_id IS DISTINCT FROM v_picked THEN
            -- Due now (a run that waited had no wake_at, or its deadline's).
            UPDATE sk_workflows SET wake_at = p_now, updated_at = p_now
            WHERE namespace = p_namespace AND id = v_picked AND status = 'pending'
              AND (wake_at IS NULL OR wake_at > p_now);
        END IF;
        v_done := v_done + 1;
    END LOOP;
    admitted := v_done;
    RETURN NEXT;
END;
$$;

-- sk_flow_pass without taking a run: how many were admitted.
CREATE FUNCTION sk_flow_admit(
    p_namespace TEXT, p_queue TEXT, p_released TEXT, p_now DOUBLE PRECISION, p_max INTEGER
) RETURNS INTEGER LANGUAGE sql AS $$
    SELECT admitted FROM sk_flow_pass(
        p_namespace, p_queue, p_released, p_now, p_max, NULL, NULL, NULL, NULL, NULL
    );
$$;

-- A start's admission (flow_start). A start into a busy queue finds it at its
-- concurrency limit and admits nothing: it takes the queue's start gate shared (starts
-- do not wait for one another, nor for admissions) and counts again, which sees any end
-- that took the gate exclusively before it (sk_flow_admit). A slot found open then is
-- answered -1: holding the gate, the start cannot wait for the admission lock (an end
-- holding that lock may be waiting for the gate), so its caller admits once it has
-- committed. A queue with room, or without a concurrency limit, is admitted under the
-- admission lock (sk_flow_admit), the gate not taken.
CREATE FUNCTION sk_flow_admit_start(
    p_namespace TEXT, p_queue TEXT, p_now DOUBLE PRECISION
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_limit INTEGER;
BEGIN
    SELECT concurrency INTO v_limit FROM sk_flow_queues
    WHERE namespace = p_namespace AND name = p_queue;
    IF v_limit IS NULL OR (
        SELECT count(*) FROM sk_flow_runs a
        WHERE a.namespace = p_namespace AND a.queue = p_queue AND a.state = 'admitted'
    ) < v_limit THEN
        RETURN sk_flow_admit(p_namespace, p_queue, NULL, p_now, 1);
    END IF;
    PERFORM pg_advisory_xact_lock_shared(
        1397441101, hashtext(p_namespace || chr(31) || p_queue)
    );
    IF (
        SELECT count(*) FROM sk_flow_runs a
        WHERE a.namespace = p_namespace AND a.queue = p_queue AND a.state = 'admitted'
    ) < v_limit THEN
        RETURN -1;
    END IF;
    RETURN 0;
END;
$$;

-- Consumers' per-group concurrency (flow control): at most per_group messages of one
-- group of a queue are live heads (ready or leased) at a time, the rest wait; a queue
-- without a row here keeps FIFO groups (1). The join function reads it (under the lock
-- of the group's row, as before); a head's leave promotes the next waiting message as
-- before, which keeps the heads at min(live, per_group).
CREATE TABLE sk_queue_limits (
    namespace TEXT NOT NULL,
    queue     TEXT NOT NULL,
    per_group INTEGER NOT NULL,
    concurrency INTEGER,
    PRIMARY KEY (namespace, queue)
);

CREATE OR REPLACE FUNCTION sk_queue_group_join() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    members INTEGER;
    heads INTEGER;
BEGIN
    INSERT INTO sk_queue_groups AS g (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = g.live + 1
    RETURNING g.live INTO members;
    SELECT per_group INTO heads FROM sk_queue_limits
    WHERE namespace = NEW.namespace AND queue = NEW.queue;
    NEW.state := CASE WHEN members > coalesce(heads, 1) THEN 'waiting' ELSE 'ready' END;
    RETURN NEW;
END;
$$;

-- ---- Schedules (issue 12, item 2; migration 0019_schedules) ----
CREATE TABLE sk_schedules (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    input        BYTEA NOT NULL,
    spec         TEXT NOT NULL,
    overlap      TEXT NOT NULL,
    jitter       DOUBLE PRECISION NOT NULL,
    catchup      DOUBLE PRECISION NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    next_fire_at DOUBLE PRECISION,
    due_at       DOUBLE PRECISION,
    last_run_id  TEXT,
    buffered     TEXT NOT NULL DEFAULT '[]',
    version      BIGINT NOT NULL DEFAULT 0,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    -- The workflow queue its fires start their runs in (NULL: none; migration
    -- 0022_schedule_queues), and their key and priority there.
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

-- How many messages a receive of queue p_queue may lease (at most p_limit): p_limit if
-- the queue has no concurrency limit; else what the limit leaves, counted under the
-- queue's transaction-scoped advisory lock, so that concurrent receives in any number
-- of processes take turns (a volatile function's statement reads a snapshot taken after
-- the lock: every lease committed before it is counted). queue_receive calls it as its
-- LIMIT, once, before it reads the queue; the lock is held until the receive commits.
CREATE FUNCTION sk_queue_cap(
    p_namespace TEXT, p_queue TEXT, p_limit INTEGER, p_now DOUBLE PRECISION
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_cap INTEGER;
    v_leased INTEGER;
BEGIN
    SELECT concurrency INTO v_cap FROM sk_queue_limits
    WHERE namespace = p_namespace AND queue = p_queue;
    IF v_cap IS NULL THEN
        RETURN p_limit;
    END IF;
    -- 'SKQC': statekeeper queue concurrency
    PERFORM pg_advisory_xact_lock(1397445955, hashtext(p_namespace || chr(31) || p_queue));
    SELECT count(*) INTO v_leased FROM sk_messages
    WHERE namespace = p_namespace AND queue = p_queue AND state = 'leased'
      AND available_at > p_now;
    RETURN greatest(0, least(p_limit, v_cap - v_leased));
END;
$$;

-- Keyed entities (virtual objects): one row per entity that was ever called, holding
-- its state (JSON, sealed when encryption is on; NULL until a handler first commits),
-- how many calls changed it (version), and the lease that makes one process at a time
-- its writer: holder and lease_until, and lease_token, raised by every lease, which a
-- commit must still match (a writer whose lease was taken over applies nothing).
CREATE TABLE sk_entities (
    namespace   TEXT NOT NULL,
    type        TEXT NOT NULL,
    key         TEXT NOT NULL,
    state       BYTEA,
    version     BIGINT NOT NULL DEFAULT 0,
    holder      TEXT,
    lease_token BIGINT NOT NULL DEFAULT 0,
    lease_until DOUBLE PRECISION,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, type, key)
);

-- The answers to entity calls made with a call id, committed with the state their
-- handler left: a call repeated with its id gets this answer instead of running again.
-- expires_at: when the purge may drop it.
CREATE TABLE sk_entity_calls (
    namespace  TEXT NOT NULL,
    type       TEXT NOT NULL,
    key        TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    handler    TEXT NOT NULL,
    result     BYTEA,
    error      TEXT,
    version    BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, type, key, call_id)
);

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
    seq         BIGINT NOT NULL,
    value       BYTEA,
    run         BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    written_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, key, seq)
);

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
    id          BYTEA PRIMARY KEY,
    namespace   TEXT NOT NULL,
    store       TEXT NOT NULL,
    size        BIGINT,
    chunks      BIGINT,
    refs        BIGINT NOT NULL DEFAULT 0,
    created_at  DOUBLE PRECISION NOT NULL,
    released_at DOUBLE PRECISION
);
CREATE INDEX sk_blobs_unreferenced ON sk_blobs (created_at) WHERE refs <= 0;

-- A blob's bytes in the database: chunk seq of blob blob_id (sealed when encryption is on).
CREATE TABLE sk_blob_chunks (
    blob_id BYTEA NOT NULL,
    seq     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (blob_id, seq)
);

-- Keeps the count of one payload column (the trigger's argument) of the changed row:
-- the last reference gone marks the blob released (the sweep removes it), a reference
-- coming back takes the mark away, and a reference to a blob that is gone is refused.
CREATE FUNCTION sk_blob_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_ref BYTEA;
    new_ref BYTEA;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) USING OLD INTO old_ref;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) USING NEW INTO new_ref;
    END IF;
    IF old_ref IS NOT DISTINCT FROM new_ref THEN
        RETURN NULL;
    END IF;
    IF substring(new_ref FROM 1 FOR 4) = '\xff534b52'::bytea THEN
        UPDATE sk_blobs SET refs = refs + 1, released_at = NULL
        WHERE id = substring(new_ref FROM 5 FOR 16);
        IF NOT FOUND THEN  -- never a reference to a blob that is gone
            RAISE EXCEPTION 'statekeeper: a row refers to a blob that is gone'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    IF substring(old_ref FROM 1 FOR 4) = '\xff534b52'::bytea THEN
        UPDATE sk_blobs SET refs = refs - 1,
            released_at = CASE WHEN refs <= 1 THEN extract(epoch FROM clock_timestamp())
                               ELSE released_at END
        WHERE id = substring(old_ref FROM 5 FOR 16);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sk_blob_ref_sk_state_value_i AFTER INSERT ON sk_state FOR EACH ROW
    WHEN (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_state_value_u AFTER UPDATE OF value ON sk_state FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_state_value_d AFTER DELETE ON sk_state FOR EACH ROW
    WHEN (substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');

CREATE TRIGGER sk_blob_ref_sk_messages_body_i AFTER INSERT ON sk_messages FOR EACH ROW
    WHEN (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_messages_body_u AFTER UPDATE OF body ON sk_messages FOR EACH ROW
    WHEN (NEW.body IS DISTINCT FROM OLD.body AND (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_messages_body_d AFTER DELETE ON sk_messages FOR EACH ROW
    WHEN (substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');

CREATE TRIGGER sk_blob_ref_sk_message_archive_body_i AFTER INSERT ON sk_message_archive FOR EACH ROW
    WHEN (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_u AFTER UPDATE OF body ON sk_message_archive FOR EACH ROW
    WHEN (NEW.body IS DISTINCT FROM OLD.body AND (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_d AFTER DELETE ON sk_message_archive FOR EACH ROW
    WHEN (substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');

CREATE TRIGGER sk_blob_ref_sk_message_archive_result_i AFTER INSERT ON sk_message_archive FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_u AFTER UPDATE OF result ON sk_message_archive FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_d AFTER DELETE ON sk_message_archive FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_idempotency_result_i AFTER INSERT ON sk_idempotency FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_u AFTER UPDATE OF result ON sk_idempotency FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_d AFTER DELETE ON sk_idempotency FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_workflows_input_i AFTER INSERT ON sk_workflows FOR EACH ROW
    WHEN (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflows_input_u AFTER UPDATE OF input ON sk_workflows FOR EACH ROW
    WHEN (NEW.input IS DISTINCT FROM OLD.input AND (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflows_input_d AFTER DELETE ON sk_workflows FOR EACH ROW
    WHEN (substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');

CREATE TRIGGER sk_blob_ref_sk_workflows_output_i AFTER INSERT ON sk_workflows FOR EACH ROW
    WHEN (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflows_output_u AFTER UPDATE OF output ON sk_workflows FOR EACH ROW
    WHEN (NEW.output IS DISTINCT FROM OLD.output AND (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflows_output_d AFTER DELETE ON sk_workflows FOR EACH ROW
    WHEN (substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_i AFTER INSERT ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_u AFTER UPDATE OF input ON sk_workflow_steps FOR EACH ROW
    WHEN (NEW.input IS DISTINCT FROM OLD.input AND (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_d AFTER DELETE ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_i AFTER INSERT ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_u AFTER UPDATE OF output ON sk_workflow_steps FOR EACH ROW
    WHEN (NEW.output IS DISTINCT FROM OLD.output AND (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_d AFTER DELETE ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');

CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_i AFTER INSERT ON sk_workflow_events FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_u AFTER UPDATE OF data ON sk_workflow_events FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_d AFTER DELETE ON sk_workflow_events FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_events_data_i AFTER INSERT ON sk_events FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_events_data_u AFTER UPDATE OF data ON sk_events FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_events_data_d AFTER DELETE ON sk_events FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_i AFTER INSERT ON sk_event_snapshots FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_u AFTER UPDATE OF data ON sk_event_snapshots FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_d AFTER DELETE ON sk_event_snapshots FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_i AFTER INSERT ON sk_workflow_messages FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_u AFTER UPDATE OF data ON sk_workflow_messages FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_d AFTER DELETE ON sk_workflow_messages FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_i AFTER INSERT ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_u AFTER UPDATE OF data ON sk_workflow_updates FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_d AFTER DELETE ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_i AFTER INSERT ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_u AFTER UPDATE OF result ON sk_workflow_updates FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_d AFTER DELETE ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_i AFTER INSERT ON sk_workflow_values FOR EACH ROW
    WHEN (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_u AFTER UPDATE OF value ON sk_workflow_values FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_d AFTER DELETE ON sk_workflow_values FOR EACH ROW
    WHEN (substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');

CREATE TRIGGER sk_blob_ref_sk_schedules_input_i AFTER INSERT ON sk_schedules FOR EACH ROW
    WHEN (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_schedules_input_u AFTER UPDATE OF input ON sk_schedules FOR EACH ROW
    WHEN (NEW.input IS DISTINCT FROM OLD.input AND (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_schedules_input_d AFTER DELETE ON sk_schedules FOR EACH ROW
    WHEN (substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');

CREATE TRIGGER sk_blob_ref_sk_entities_state_i AFTER INSERT ON sk_entities FOR EACH ROW
    WHEN (substring(NEW.state FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('state');
CREATE TRIGGER sk_blob_ref_sk_entities_state_u AFTER UPDATE OF state ON sk_entities FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state AND (substring(NEW.state FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.state FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('state');
CREATE TRIGGER sk_blob_ref_sk_entities_state_d AFTER DELETE ON sk_entities FOR EACH ROW
    WHEN (substring(OLD.state FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('state');

CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_i AFTER INSERT ON sk_entity_calls FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_u AFTER UPDATE OF result ON sk_entity_calls FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_d AFTER DELETE ON sk_entity_calls FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_i AFTER INSERT ON sk_workflow_streams FOR EACH ROW
    WHEN (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_u AFTER UPDATE OF value ON sk_workflow_streams FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_d AFTER DELETE ON sk_workflow_streams FOR EACH ROW
    WHEN (substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');

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
    max_bytes    BIGINT NOT NULL,
    sha256       TEXT,
    content_type TEXT,
    created_at   DOUBLE PRECISION NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL,
    blob         BYTEA,
    size         BIGINT,
    digest       TEXT,
    completed_at DOUBLE PRECISION,
    started      TEXT,
    checked_at   DOUBLE PRECISION,
    attempts     INTEGER NOT NULL DEFAULT 0,
    start_error  TEXT,
    retry_at     DOUBLE PRECISION,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX sk_uploads_pending ON sk_uploads (expires_at) WHERE state = 'pending';
CREATE INDEX sk_uploads_unstarted ON sk_uploads (namespace, retry_at)
    WHERE state = 'complete' AND started IS NULL;
CREATE INDEX sk_uploads_failed ON sk_uploads (retry_at) WHERE state = 'failed';
CREATE INDEX sk_uploads_checked ON sk_uploads (checked_at) WHERE started IS NOT NULL;

CREATE TRIGGER sk_blob_ref_sk_uploads_blob_i AFTER INSERT ON sk_uploads FOR EACH ROW
    WHEN (substring(NEW.blob FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('blob');
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_u AFTER UPDATE OF blob ON sk_uploads FOR EACH ROW
    WHEN (NEW.blob IS DISTINCT FROM OLD.blob AND (substring(NEW.blob FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.blob FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('blob');
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_d AFTER DELETE ON sk_uploads FOR EACH ROW
    WHEN (substring(OLD.blob FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('blob');

-- The W3C trace context of the span that started a workflow (0028 / 0030): its runs' spans
-- are children of it. NULL without traces (observability/tracing.py).
ALTER TABLE sk_workflows ADD COLUMN trace TEXT;
