-- Admission's pick of the next waiting run checks its workflow through a scalar subquery
-- (it was an EXISTS, which the planner could turn into a join reading every workflow of
-- the namespace, sorted, when sk_workflows' statistics were stale: 390 ms at 100,000
-- waiting runs instead of 0.2 ms). See schema/postgres.sql.

CREATE OR REPLACE FUNCTION sk_flow_admit(
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
