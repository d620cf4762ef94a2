-- Workflow statements that differ on PostgreSQL.

-- name: wf_checkpoint
-- A step's outcome, written only while the fence is the runner's, renewing the lease:
-- one statement, one round trip per durable step.
WITH owned AS (
    UPDATE sk_workflows SET lease_expires_at = :lease_end, updated_at = :now
    WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
    RETURNING cancel_requested
), recorded AS (
    INSERT INTO sk_workflow_steps (namespace, workflow_id, position, kind, name, input,
                                   output, error, attempts, started_at, finished_at)
    SELECT :namespace, :id, :position, :kind, :step_name, :input::bytea, :output::bytea,
           :error, :attempts, :started_at, :now
    WHERE EXISTS (SELECT 1 FROM owned)
    RETURNING position
)
SELECT (SELECT cancel_requested FROM owned), (SELECT count(*) FROM recorded);
