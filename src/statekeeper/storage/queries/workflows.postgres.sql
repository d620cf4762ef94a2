-- name: wf_commit_step
-- A unit of work that holds only a workflow step (the common checkpoint): sk_commit's
-- step part as one plain statement, without the function call and its empty arrays.
-- No row of owned (NULL back): the lease is lost and nothing is written. The INSERT
-- runs whatever the final SELECT reads (PostgreSQL runs every data-modifying WITH).
WITH owned AS (
    UPDATE sk_workflows SET lease_expires_at = :lease_end, updated_at = :now
    WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
    RETURNING cancel_requested
), recorded AS (
    INSERT INTO sk_workflow_steps AS s (namespace, workflow_id, position, kind, name, input,
                                        output, error, attempts, started_at, finished_at)
    SELECT :namespace, :id, :position, :kind, :step_name, :input::bytea, :output::bytea,
           :error, :attempts, :started_at, :now
    WHERE EXISTS (SELECT 1 FROM owned)
    ON CONFLICT (namespace, workflow_id, position) DO UPDATE
    SET kind = excluded.kind, input = excluded.input, output = excluded.output,
        error = excluded.error, attempts = excluded.attempts, started_at = excluded.started_at,
        finished_at = excluded.finished_at
    WHERE s.kind = 'attempt'
    RETURNING position
)
SELECT (SELECT cancel_requested FROM owned);
