-- Errors are recorded as JSON objects {"type", "message", "traceback"} (errors.ErrorRecord),
-- so a catch matches the type and the traceback is kept. Plain-text errors recorded before
-- ("Type: message") are converted here; sealed ones cannot be, and read as the message
-- of an "Error".

UPDATE sk_workflow_steps SET error = CASE
    WHEN strpos(error, ':') = 0 AND strpos(error, ' ') = 0
        THEN json_build_object('type', error, 'message', '', 'traceback', NULL)::text
    WHEN strpos(error, ': ') > 1 AND strpos(split_part(error, ': ', 1), ' ') = 0
        THEN json_build_object('type', split_part(error, ': ', 1),
                               'message', substr(error, strpos(error, ': ') + 2),
                               'traceback', NULL)::text
    ELSE json_build_object('type', 'Error', 'message', error, 'traceback', NULL)::text
END
WHERE error IS NOT NULL AND substr(error, 1, 1) NOT IN ('{', chr(30));

UPDATE sk_workflows SET error = CASE
    WHEN strpos(error, ':') = 0 AND strpos(error, ' ') = 0
        THEN json_build_object('type', error, 'message', '', 'traceback', NULL)::text
    WHEN strpos(error, ': ') > 1 AND strpos(split_part(error, ': ', 1), ' ') = 0
        THEN json_build_object('type', split_part(error, ': ', 1),
                               'message', substr(error, strpos(error, ': ') + 2),
                               'traceback', NULL)::text
    ELSE json_build_object('type', 'Error', 'message', error, 'traceback', NULL)::text
END
WHERE error IS NOT NULL AND substr(error, 1, 1) NOT IN ('{', chr(30));

UPDATE sk_messages SET last_error = CASE
    WHEN strpos(last_error, ':') = 0 AND strpos(last_error, ' ') = 0
        THEN json_build_object('type', last_error, 'message', '', 'traceback', NULL)::text
    WHEN strpos(last_error, ': ') > 1 AND strpos(split_part(last_error, ': ', 1), ' ') = 0
        THEN json_build_object('type', split_part(last_error, ': ', 1),
                               'message', substr(last_error, strpos(last_error, ': ') + 2),
                               'traceback', NULL)::text
    ELSE json_build_object('type', 'Error', 'message', last_error, 'traceback', NULL)::text
END
WHERE last_error IS NOT NULL AND substr(last_error, 1, 1) NOT IN ('{', chr(30));

-- A workflow's deadline (Unix time; NULL: none): past it the workflow ends timed_out.
ALTER TABLE sk_workflows ADD COLUMN deadline DOUBLE PRECISION;

-- A step's failed attempts are journaled at its position as kind 'attempt' (the attempts
-- so far, the last error, when the next one is due) until the step's outcome replaces it.
CREATE OR REPLACE FUNCTION sk_commit(
    p_namespace   TEXT,
    p_now         DOUBLE PRECISION,
    -- a workflow step, recorded under its fence (p_step_id NULL: none)
    p_step_id     TEXT,
    p_fence       BIGINT,
    p_position    INTEGER,
    p_step_kind   TEXT,
    p_step_name   TEXT,
    p_step_input  BYTEA,
    p_step_output BYTEA,
    p_step_error  TEXT,
    p_attempts    INTEGER,
    p_started_at  DOUBLE PRECISION,
    p_lease_end   DOUBLE PRECISION,
    -- a leased message settled: 'ack', 'retry' or 'dead' (NULL: none)
    p_settle      TEXT,
    p_message_id  TEXT,
    p_lease_token TEXT,
    p_archive     BOOLEAN,
    p_result      BYTEA,
    p_error       TEXT,
    p_retry_at    DOUBLE PRECISION,
    -- state writes, as sk_state_apply takes them (empty arrays: none)
    p_kinds       TEXT[],
    p_keys        TEXT[],
    p_values      BYTEA[],
    p_etags       TEXT[],
    p_expires     DOUBLE PRECISION[],
    p_key_ids     TEXT[],
    p_if_match    TEXT[],
    p_absent      BOOLEAN[],
    -- messages sent (the outbox)
    p_m_ids       TEXT[],
    p_m_queues    TEXT[],
    p_m_bodies    BYTEA[],
    p_m_attributes TEXT[],
    p_m_correlation_ids TEXT[],
    p_m_groups    TEXT[],
    p_m_available DOUBLE PRECISION[],
    p_m_reply_to  TEXT[]
) RETURNS TABLE (cancel_requested INTEGER, writes BOOLEAN[]) LANGUAGE plpgsql AS $$
DECLARE
    v_cancel INTEGER;
    v_settled INTEGER;
    v_writes BOOLEAN[] := '{}';
BEGIN
    IF p_step_id IS NOT NULL THEN
        UPDATE sk_workflows w SET lease_expires_at = p_lease_end, updated_at = p_now
        WHERE w.namespace = p_namespace AND w.id = p_step_id AND w.fence = p_fence
          AND w.status = 'running'
        RETURNING w.cancel_requested INTO v_cancel;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410', MESSAGE = 'the workflow''s lease is lost';
        END IF;
        INSERT INTO sk_workflow_steps AS s (namespace, workflow_id, position, kind, name,
                                            input, output, error, attempts, started_at,
                                            finished_at)
        VALUES (p_namespace, p_step_id, p_position, p_step_kind, p_step_name, p_step_input,
                p_step_output, p_step_error, p_attempts, p_started_at, p_now)
        ON CONFLICT (namespace, workflow_id, position) DO UPDATE
        SET kind = EXCLUDED.kind, input = EXCLUDED.input, output = EXCLUDED.output,
            error = EXCLUDED.error, attempts = EXCLUDED.attempts,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at
        WHERE s.kind = 'attempt';
    END IF;
    IF p_settle = 'ack' THEN
        WITH done AS (
            DELETE FROM sk_messages m WHERE m.id = p_message_id AND m.lease_token = p_lease_token
            RETURNING m.id, m.namespace, m.queue, m.body, m.attributes, m.correlation_id,
                      m.group_id, m.attempts, m.enqueued_at, m.reply_to
        ), archived AS (
            INSERT INTO sk_message_archive (id, namespace, queue, body, attributes,
                                            correlation_id, group_id, attempts, enqueued_at,
                                            completed_at, reply_to, result)
            SELECT d.id, d.namespace, d.queue, d.body, d.attributes, d.correlation_id,
                   d.group_id, d.attempts, d.enqueued_at, p_now, d.reply_to, p_result
            FROM done d WHERE p_archive
            ON CONFLICT (id) DO NOTHING
        )
        SELECT count(*) INTO v_settled FROM done;
        IF v_settled = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410', MESSAGE = 'the message''s lease is lost';
        END IF;
    ELSIF p_settle IS NOT NULL THEN
        UPDATE sk_messages m
        SET state = CASE WHEN p_settle = 'dead' THEN 'dead' ELSE 'ready' END,
            dead_at = CASE WHEN p_settle = 'dead' THEN p_now END,
            available_at = CASE WHEN p_settle = 'dead' THEN m.available_at ELSE p_retry_at END,
            last_error = p_error, lease_token = NULL
        WHERE m.id = p_message_id AND m.lease_token = p_lease_token;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SK410', MESSAGE = 'the message''s lease is lost';
        END IF;
    END IF;
    IF coalesce(array_length(p_keys, 1), 0) > 0 THEN
        v_writes := sk_state_apply(p_namespace, p_now, p_kinds, p_keys, p_values, p_etags,
                                   p_expires, p_key_ids, p_if_match, p_absent);
    END IF;
    IF coalesce(array_length(p_m_ids, 1), 0) > 0 THEN
        -- Grouped messages take their groups' rows (a trigger) in group order, as every
        -- sender does, so that no two transactions deadlock; each group keeps its order.
        INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id,
                                 group_id, state, available_at, attempts, enqueued_at, reply_to)
        SELECT m.id, p_namespace, m.queue, m.body, m.attributes, m.correlation_id, m.group_id,
               'ready', m.available_at, 0, p_now, m.reply_to
        FROM unnest(p_m_ids, p_m_queues, p_m_bodies, p_m_attributes, p_m_correlation_ids,
                    p_m_groups, p_m_available, p_m_reply_to) WITH ORDINALITY
             AS m(id, queue, body, attributes, correlation_id, group_id, available_at,
                  reply_to, ord)
        ORDER BY m.group_id NULLS FIRST, m.ord;
    END IF;
    RETURN QUERY SELECT v_cancel, v_writes;
END;
$$;
