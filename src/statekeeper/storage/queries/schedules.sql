-- Schedules (migration 0019). Every write but a claim names the version it read and
-- adds one to it: two schedulers (or a scheduler and an operator) that read the same
-- row cannot both write it, so a fire is decided once. A fire's run is created in the
-- same transaction as the write that moves next_fire_at past it (schedule_ops.write).

-- name: sch_create
INSERT INTO sk_schedules (namespace, id, workflow, input, spec, overlap, jitter, catchup,
                          paused, next_fire_at, due_at, last_run_id, buffered, version,
                          created_at, updated_at, queue, queue_key, priority)
VALUES (:namespace, :id, :workflow, :input, :spec, :overlap, :jitter, :catchup, :paused,
        :next_fire_at, :due_at, NULL, '[]', 0, :now, :now, :queue, :queue_key, :priority)
ON CONFLICT (namespace, id) DO NOTHING
RETURNING id;

-- name: sch_get
SELECT id, workflow, input, spec, overlap, jitter, catchup, paused, next_fire_at, due_at,
       last_run_id, buffered, version, created_at, updated_at, queue, queue_key, priority
FROM sk_schedules WHERE namespace = :namespace AND id = :id;

-- name: sch_list
SELECT id, workflow, input, spec, overlap, jitter, catchup, paused, next_fire_at, due_at,
       last_run_id, buffered, version, created_at, updated_at, queue, queue_key, priority
FROM sk_schedules WHERE namespace = :namespace AND id > :after
ORDER BY id LIMIT :limit;

-- name: sch_delete
DELETE FROM sk_schedules WHERE namespace = :namespace AND id = :id RETURNING id;

-- name: sch_write
UPDATE sk_schedules
SET workflow = :workflow, input = :input, spec = :spec, overlap = :overlap,
    jitter = :jitter, catchup = :catchup, paused = :paused, next_fire_at = :next_fire_at,
    due_at = :due_at, last_run_id = :last_run_id, buffered = :buffered, queue = :queue,
    queue_key = :queue_key, priority = :priority, version = version + 1, updated_at = :now
WHERE namespace = :namespace AND id = :id AND version = :version
RETURNING id;

-- name: sch_claim
-- The due schedules, oldest due first, one indexed range read of sk_schedules_due (on
-- PostgreSQL gathered into an array first, so that the rows are then found by primary
-- key whatever the planner believes of the table's size). Each
-- is claimed: its due_at moves to the claim's lease end (a scheduler that dies holding
-- it leaves it due again then, and fires missed meanwhile run within the catch-up
-- window) and its version moves on (a write by a scheduler that read it before fails).
UPDATE sk_schedules SET due_at = :lease_end, version = version + 1
WHERE namespace = :namespace
  -- sqlite: AND id IN (
  -- postgres: AND id = ANY(ARRAY(
    SELECT id FROM sk_schedules
    WHERE namespace = :namespace AND due_at IS NOT NULL AND due_at <= :now
    ORDER BY due_at
    LIMIT :limit
    -- postgres: FOR UPDATE SKIP LOCKED
  -- sqlite: )
  -- postgres: ))
RETURNING id, workflow, input, spec, overlap, jitter, catchup, paused, next_fire_at, due_at,
          last_run_id, buffered, version, created_at, updated_at, queue, queue_key,
          priority;

-- name: sch_next_due
SELECT due_at FROM sk_schedules
WHERE namespace = :namespace AND due_at IS NOT NULL
ORDER BY due_at LIMIT 1;

-- name: sch_check_versions
-- The fence of a scheduler's batch of writes: a row back only if every schedule of the
-- batch still has the version it was claimed at (PostgreSQL locks them until the batch
-- commits; SQLite's one writer runs the batch alone).
SELECT count(*) FROM (
    SELECT s.id
    -- sqlite: FROM json_each(:pairs_json) j CROSS JOIN sk_schedules s
    -- sqlite:   ON s.namespace = :namespace AND s.id = json_extract(j.value, '$[0]')
    -- sqlite:   AND s.version = json_extract(j.value, '$[1]')
    -- postgres: FROM unnest(:ids::text[], :versions::bigint[]) AS v(id, version)
    -- postgres: JOIN sk_schedules s
    -- postgres:   ON s.namespace = :namespace AND s.id = v.id AND s.version = v.version
    -- postgres: FOR UPDATE OF s
) AS matched
HAVING count(*) = :count;

-- name: sch_place_run
-- The place in its workflow queue of a run a schedule starts queued (a schedule with a
-- queue), written before its workflow (sch_create_queued_run) and only if that workflow
-- does not exist yet: a fire decided again (a backfill over its time, a replayed write)
-- adds no second place, nor a place for a run that was started outside the queue.
INSERT INTO sk_flow_runs (namespace, id, queue, key, priority, state, not_before, lock,
                          created_at)
SELECT :namespace, :id, :queue, :key, :priority, 'waiting', :now, NULL, :now
WHERE NOT EXISTS (SELECT 1 FROM sk_workflows w WHERE w.namespace = :namespace AND w.id = :id)
ON CONFLICT DO NOTHING;

-- name: sch_create_queued_run
-- ... and its workflow, as flow_create_workflow makes one (keep the two in step):
-- pending but not due (no wake_at) until admission; an id that exists is left alone.
INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                          deadline, created_at, updated_at, version, trace)
VALUES (:namespace, :id, :name, 'pending', :input, 0, NULL, NULL, NULL, :now, :now, :version,
        :trace)
ON CONFLICT (namespace, id) DO NOTHING;

-- name: sch_create_run
-- A run a schedule starts due now, as wf_create makes one (keep the two in step), with
-- the trace context of its fire (NULL without traces); an id that exists is left alone.
-- No RETURNING: its row count says whether the run was created, also when SQLite runs it
-- over a batch (executemany gives no row count for a statement that returns rows).
INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                          deadline, created_at, updated_at, version, trace)
VALUES (:namespace, :id, :name, 'pending', :input, 0, :now, NULL, NULL, :now, :now, :version,
        :trace)
ON CONFLICT (namespace, id) DO NOTHING;
