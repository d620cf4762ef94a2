-- Schedules, PostgreSQL only: a scheduler's batch written set-wise (one statement for
-- the schedules, one for their runs) rather than a statement per row.

-- name: sch_write_many
-- The fired state of each schedule of the batch (its definition is not changed), under
-- the version it was claimed at; sch_check_versions has locked and checked them all.
UPDATE sk_schedules AS s
SET next_fire_at = v.next_fire_at, due_at = v.due_at, last_run_id = v.last_run_id,
    buffered = v.buffered, version = s.version + 1, updated_at = :now
FROM unnest(:ids::text[], :versions::bigint[], :next_fire_ats::float8[], :due_ats::float8[],
            :last_run_ids::text[], :buffereds::text[])
     AS v(id, version, next_fire_at, due_at, last_run_id, buffered)
WHERE s.namespace = :namespace AND s.id = v.id AND s.version = v.version;

-- name: sch_create_runs
-- The batch's runs, as sch_create_run makes one (keep the two in step): pending, due now,
-- each with the trace context of its fire; a run whose id exists already (its fire was
-- started before) is left alone. The workflow name of each run created (NULL: none).
WITH created AS (
    INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                              deadline, created_at, updated_at, version, trace)
    SELECT :namespace, r.id, r.name, 'pending', r.input, 0, :now, NULL, NULL, :now, :now,
           r.version, r.trace
    FROM unnest(:run_ids::text[], :names::text[], :inputs::bytea[], :versions::text[],
                :traces::text[])
         AS r(id, name, input, version, trace)
    ON CONFLICT (namespace, id) DO NOTHING
    RETURNING name
)
SELECT array_agg(name) FROM created;

-- name: sch_create_queued_runs
-- The batch's runs that start queued (schedules with a queue), as sch_place_run and
-- sch_create_queued_run make one (keep them in step): each workflow pending but not due,
-- and a place in its queue for each workflow created here (none for an id that exists:
-- a fire decided again adds no second place). The workflow name of each run created.
WITH created AS (
    INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                              deadline, created_at, updated_at, version, trace)
    SELECT :namespace, r.id, r.name, 'pending', r.input, 0, NULL, NULL, NULL, :now, :now,
           r.version, r.trace
    FROM unnest(:run_ids::text[], :names::text[], :inputs::bytea[], :versions::text[],
                :traces::text[])
         AS r(id, name, input, version, trace)
    ON CONFLICT (namespace, id) DO NOTHING
    RETURNING id, name
), placed AS (
    INSERT INTO sk_flow_runs (namespace, id, queue, key, priority, state, not_before, lock,
                              created_at)
    SELECT :namespace, p.id, p.queue, p.key, p.priority, 'waiting', :now, NULL, :now
    FROM unnest(:run_ids::text[], :queues::text[], :keys::text[], :priorities::int4[])
         WITH ORDINALITY AS p(id, queue, key, priority, n)
    WHERE p.id IN (SELECT id FROM created)
    ORDER BY p.n
    ON CONFLICT DO NOTHING
)
SELECT array_agg(name) FROM created;
