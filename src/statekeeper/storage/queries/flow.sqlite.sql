-- name: flow_admit
-- Admit the next run of a queue (:queue, or the queue of the run :released that just
-- ended), if its limits allow: the waiting run of highest priority (then the oldest)
-- whose key is under its own limits and that is not paused. One run a statement
-- (several of one key could pass one count together); the caller runs it as many times
-- as it wants runs. The queue's own limits refer to the one row of t only, so they are checked once, before
-- the walk of the waiting runs (sk_flow_runs_waiting); the per-key ones are a range of
-- sk_flow_runs_admitted (_key_rate) per run walked. The sk_flow_runs_admit trigger
-- makes the admitted workflow due. The same statement as the PostgreSQL function
-- sk_flow_admit (schema/postgres.sql), which runs it under a per-queue lock.
WITH t AS (
    SELECT q.namespace, q.name, q.concurrency, q.per_key_concurrency, q.rate_limit,
           q.rate_period, q.key_rate_limit, q.key_rate_period
    FROM sk_flow_queues q
    WHERE q.namespace = :namespace AND q.name = coalesce(:queue, (
        SELECT f.queue FROM sk_flow_runs f WHERE f.namespace = :namespace AND f.id = :released))
)
UPDATE sk_flow_runs
SET state = 'admitted', admitted_at = :now,
    lock = CASE WHEN lock LIKE 'd:%' THEN NULL ELSE lock END
WHERE namespace = :namespace AND id = (
    SELECT r.id FROM t JOIN sk_flow_runs r ON r.namespace = t.namespace AND r.queue = t.name
    WHERE r.state = 'waiting' AND r.not_before <= :now
      -- Not paused (nor being cancelled: it ends without a slot).
      AND EXISTS (SELECT 1 FROM sk_workflows w WHERE w.namespace = r.namespace
                  AND w.id = r.id AND w.cancel_requested = 0)
      AND (t.concurrency IS NULL OR (
          SELECT count(*) FROM sk_flow_runs a
          WHERE a.namespace = t.namespace AND a.queue = t.name AND a.state = 'admitted'
      ) < t.concurrency)
      AND (t.rate_limit IS NULL OR (
          SELECT count(*) FROM sk_flow_runs a
          WHERE a.namespace = t.namespace AND a.queue = t.name
            AND a.admitted_at IS NOT NULL AND a.admitted_at > :now - t.rate_period
      ) < t.rate_limit)
      AND (r.key IS NULL OR t.per_key_concurrency IS NULL OR (
          SELECT count(*) FROM sk_flow_runs k
          WHERE k.namespace = t.namespace AND k.queue = t.name AND k.key = r.key
            AND k.state = 'admitted'
      ) < t.per_key_concurrency)
      AND (r.key IS NULL OR t.key_rate_limit IS NULL OR (
          SELECT count(*) FROM sk_flow_runs k
          WHERE k.namespace = t.namespace AND k.queue = t.name AND k.key = r.key
            AND k.admitted_at IS NOT NULL AND k.admitted_at > :now - t.key_rate_period
      ) < t.key_rate_limit)
    ORDER BY r.priority DESC, r.seq
    LIMIT 1
)
RETURNING id;
