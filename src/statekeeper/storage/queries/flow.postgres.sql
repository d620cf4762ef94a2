-- name: flow_admit
-- Release :released (if given) and admit up to :max runs of its queue (or of :queue),
-- under the queue's advisory lock: the function sk_flow_admit (schema/postgres.sql), one
-- round trip. How many were admitted.
SELECT sk_flow_admit(:namespace, CAST(:queue AS TEXT), CAST(:released AS TEXT),
                     CAST(:now AS DOUBLE PRECISION), CAST(:max AS INTEGER));

-- name: flow_start
-- A start into a queue in one statement (one round trip, one commit): the queued workflow
-- (due at its deadline, if it has one, to time out; with the trace context it was started
-- in, as flow_create_workflow keeps it), its place, and admission of what
-- the queue allows (sk_flow_admit_start, called for the placed row only: a volatile
-- function's statements see the rows this statement inserted before it; -1 when a slot
-- opened while the queue looked full: the caller admits after this commits). A held lock
-- (sk_flow_runs_lock) is a unique violation that undoes all; a taken id inserts neither
-- and admits nothing (created, placed and admitted are NULL).
WITH created AS (
    INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                              deadline, created_at, updated_at, version, trace)
    VALUES (:namespace, :id, :name, 'pending', :input, 0, :deadline, NULL, :deadline, :now,
            :now, :version, :trace)
    ON CONFLICT (namespace, id) DO NOTHING
    RETURNING id
), placed AS (
    INSERT INTO sk_flow_runs (namespace, id, queue, key, priority, state, not_before, lock,
                              created_at)
    SELECT :namespace, id, :queue, :key, :priority, 'waiting', :not_before, :lock, :now
    FROM created
    RETURNING id
)
SELECT (SELECT id FROM created), (SELECT id FROM placed),
       (SELECT sk_flow_admit_start(:namespace, CAST(:queue AS TEXT),
                                   CAST(:now AS DOUBLE PRECISION)) FROM placed);
