-- Queue statements that differ on PostgreSQL.

-- name: queue_receive
-- SKIP LOCKED: receivers in many processes lease different messages, never waiting.
-- The first part dead-letters leases that ran out on their last attempt, in the same
-- round trip.
WITH exhausted AS (
    UPDATE sk_messages
    SET state = 'dead', dead_at = :now, lease_token = NULL,
        last_error = 'lease expired on attempt ' || attempts
    WHERE namespace = :namespace AND queue = :queue AND state = 'leased'
      AND available_at <= :now AND attempts >= :max_attempts
)
UPDATE sk_messages
SET state = 'leased', lease_token = :lease_token, available_at = :lease_end,
    attempts = attempts + 1
WHERE seq IN (
    SELECT m.seq FROM sk_messages m
    WHERE m.namespace = :namespace AND m.queue = :queue AND m.state <> 'dead'
      AND m.available_at <= :now AND (m.state = 'ready' OR m.attempts < :max_attempts)
      AND (m.group_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM sk_messages o
          WHERE o.namespace = m.namespace AND o.queue = m.queue AND o.group_id = m.group_id
            AND o.seq < m.seq AND o.state <> 'dead'))
    ORDER BY m.seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
          enqueued_at, last_error, state, dead_at;

-- name: queue_ack
-- Delete and archive in one statement, one round trip.
WITH done AS (
    DELETE FROM sk_messages
    WHERE namespace = :namespace AND queue = :queue AND id = :id
      AND lease_token = :lease_token AND state = 'leased'
    RETURNING id, namespace, queue, body, attributes, correlation_id, group_id, attempts,
              enqueued_at
), archived AS (
    INSERT INTO sk_message_archive (id, namespace, queue, body, attributes, correlation_id,
                                    group_id, attempts, enqueued_at, completed_at)
    SELECT id, namespace, queue, body, attributes, correlation_id, group_id, attempts,
           enqueued_at, :now
    FROM done WHERE :archive::bool
    ON CONFLICT (id) DO NOTHING
)
SELECT count(*) FROM done;

-- name: queue_redrive_ids
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = 0, dead_at = NULL, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND state = 'dead'
  AND id = ANY(:ids::text[]);

-- name: queue_send_dedup
-- Claims the deduplication id and enqueues only if the claim was won, in one round trip.
WITH claim AS (
    INSERT INTO sk_queue_dedup (namespace, queue, dedup_id, message_id, expires_at)
    VALUES (:namespace, :queue, :dedup_id, :id, :dedup_expires_at)
    ON CONFLICT (namespace, queue, dedup_id) DO UPDATE
    SET message_id = excluded.message_id, expires_at = excluded.expires_at
    WHERE sk_queue_dedup.expires_at <= :now
    RETURNING message_id
), sent AS (
    INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                             state, available_at, attempts, enqueued_at)
    SELECT :id, :namespace, :queue, :body::bytea, :attributes, :correlation_id, :group_id,
           'ready', :available_at, 0, :now
    WHERE EXISTS (SELECT 1 FROM claim)
    RETURNING id
)
SELECT (SELECT id FROM sent),
       (SELECT message_id FROM sk_queue_dedup
        WHERE namespace = :namespace AND queue = :queue AND dedup_id = :dedup_id);
