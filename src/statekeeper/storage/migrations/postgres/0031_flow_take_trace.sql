-- The run an end takes (sk_flow_pass with p_owner, flow_ops.finishing) is returned with
-- the trace context it was started in (taken_trace), as wf_lease returns a run: its
-- runner's spans join the trace of its start. A new result column: the function is
-- made again (sk_flow_admit calls it by name and reads its admitted column only).

DROP FUNCTION sk_flow_pass(
    TEXT, TEXT, TEXT, DOUBLE PRECISION, INTEGER, TEXT, DOUBLE PRECISION, TEXT[], TEXT[], JSONB
);

-- As 0024 made it (schema/postgres.sql says how it admits), taken_trace added.
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
