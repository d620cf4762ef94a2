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
