-- Flow control: named workflow queues (issue 12, part 3). See schema/postgres.sql.

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

-- Admission, serialized per queue by a transaction-scoped advisory lock (every worker
-- admits through here, so the counts it reads are the committed truth: each statement
-- of a plpgsql function reads a fresh snapshot, taken after the lock). p_released: a run
-- that just ended, whose slot is given back first (its queue is p_queue when that is
-- NULL). Admits up to p_max runs, one at a time (flow_admit of
-- queries/flow.sqlite.sql is the same statement for SQLite); how many.
CREATE FUNCTION sk_flow_admit(
    p_namespace TEXT, p_queue TEXT, p_released TEXT, p_now DOUBLE PRECISION, p_max INTEGER
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_queue TEXT := p_queue;
    v_done INTEGER := 0;
    v_picked TEXT;
    v_limits sk_flow_queues%ROWTYPE;
BEGIN
    IF p_released IS NOT NULL THEN
        -- Read, not locked: the queue's lock comes before any row of it is locked (a
        -- finish holds its workflow's row; an end that locked its place first and then
        -- waited for the queue could wait on one that picked that place: a deadlock).
        SELECT queue INTO v_queue FROM sk_flow_runs
        WHERE namespace = p_namespace AND id = p_released AND state <> 'done';
        IF v_queue IS NULL THEN
            RETURN 0;
        END IF;
    END IF;
    -- 'SKFL': statekeeper flow queues
    PERFORM pg_advisory_xact_lock(1397441100, hashtext(p_namespace || chr(31) || v_queue));
    IF p_released IS NOT NULL THEN
        UPDATE sk_flow_runs SET state = 'done', lock = NULL
        WHERE namespace = p_namespace AND id = p_released AND state <> 'done';
    END IF;
    SELECT * INTO v_limits FROM sk_flow_queues WHERE namespace = p_namespace AND name = v_queue;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WHILE v_done < p_max LOOP
        EXIT WHEN v_limits.concurrency IS NOT NULL AND (
            SELECT count(*) FROM sk_flow_runs a
            WHERE a.namespace = p_namespace AND a.queue = v_queue AND a.state = 'admitted'
        ) >= v_limits.concurrency;
        EXIT WHEN v_limits.rate_limit IS NOT NULL AND (
            SELECT count(*) FROM sk_flow_runs a
            WHERE a.namespace = p_namespace AND a.queue = v_queue
              AND a.admitted_at IS NOT NULL AND a.admitted_at > p_now - v_limits.rate_period
        ) >= v_limits.rate_limit;
        v_picked := NULL;
        UPDATE sk_flow_runs
        SET state = 'admitted', admitted_at = p_now,
            lock = CASE WHEN lock LIKE 'd:%' THEN NULL ELSE lock END
        WHERE namespace = p_namespace AND id = (
            SELECT r.id FROM sk_flow_runs r
            WHERE r.namespace = p_namespace AND r.queue = v_queue AND r.state = 'waiting'
              AND r.not_before <= p_now
              -- Not paused (nor being cancelled: it ends without a slot).
              AND EXISTS (SELECT 1 FROM sk_workflows w WHERE w.namespace = p_namespace
                          AND w.id = r.id AND w.cancel_requested = 0)
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
            FOR UPDATE OF r SKIP LOCKED
        )
        RETURNING id INTO v_picked;
        EXIT WHEN v_picked IS NULL;
        -- Due now (a run that waited had no wake_at, or its deadline's).
        UPDATE sk_workflows SET wake_at = p_now, updated_at = p_now
        WHERE namespace = p_namespace AND id = v_picked AND status = 'pending'
          AND (wake_at IS NULL OR wake_at > p_now);
        v_done := v_done + 1;
    END LOOP;
    RETURN v_done;
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
