-- name: wfm_record
-- A receive's, an update's or a publish's journal entry with what it settles (the
-- update's outcome, the published value), as one statement: what the script of
-- wf_checkpoint_renew, wf_record_step, wfm_settle_update and wfm_put_value does on
-- SQLite. NULL back: the lease is lost and nothing is written (every part waits for
-- owned). :seq NULL settles no update; :key NULL publishes no value; :stream_key NULL
-- appends to no durable stream (wfs_append on SQLite).
WITH owned AS (
    UPDATE sk_workflows SET lease_expires_at = :lease_end, updated_at = :now
    WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
    RETURNING cancel_requested
), recorded AS (
    INSERT INTO sk_workflow_steps AS s (namespace, workflow_id, position, kind, name,
                                        output, error, attempts, finished_at)
    SELECT :namespace, :id, :position, :kind, :step_name, :output::bytea, :error,
           :attempts, :now
    WHERE EXISTS (SELECT 1 FROM owned)
    ON CONFLICT (namespace, workflow_id, position) DO UPDATE
    SET kind = excluded.kind, input = NULL, output = excluded.output,
        error = excluded.error, attempts = excluded.attempts, started_at = NULL,
        finished_at = excluded.finished_at
    WHERE s.kind = 'attempt'
    RETURNING position
), settled AS (
    UPDATE sk_workflow_updates
    SET status = :status, result = :result::bytea, error = :update_error, finished_at = :now
    WHERE namespace = :namespace AND workflow_id = :id AND seq = :seq AND status = 'pending'
      AND EXISTS (SELECT 1 FROM owned)
    RETURNING seq
), published AS (
    INSERT INTO sk_workflow_values (namespace, workflow_id, key, value, updated_at)
    SELECT :namespace, :id, :key, :value::bytea, :now
    WHERE EXISTS (SELECT 1 FROM owned) AND CAST(:key AS TEXT) IS NOT NULL
    ON CONFLICT (namespace, workflow_id, key) DO UPDATE
    SET value = excluded.value, updated_at = excluded.updated_at
    RETURNING key
), appended AS (
    INSERT INTO sk_workflow_streams (namespace, workflow_id, key, seq, value, run, position,
                                     written_at)
    SELECT :namespace, :id, :stream_key, COALESCE(last.seq, -1) + 1, :stream_value::bytea,
           :stream_run, :position, :now
    FROM (SELECT 1 AS here) AS here
    LEFT JOIN (
        SELECT seq, value FROM sk_workflow_streams
        WHERE namespace = :namespace AND workflow_id = :id AND key = :stream_key
        ORDER BY seq DESC
        LIMIT 1
    ) AS last ON TRUE
    WHERE EXISTS (SELECT 1 FROM owned) AND CAST(:stream_key AS TEXT) IS NOT NULL
      AND (last.seq IS NULL OR last.value IS NOT NULL)
    RETURNING seq
)
SELECT (SELECT cancel_requested FROM owned);
