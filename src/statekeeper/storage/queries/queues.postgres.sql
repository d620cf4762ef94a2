-- Queue statements that differ on PostgreSQL.

-- name: queue_receive
-- As in queues.sql, with SKIP LOCKED: receivers in many processes lease different
-- messages, never waiting on each other.
UPDATE sk_messages
SET state = CASE WHEN state = 'leased' AND attempts >= :max_attempts THEN 'dead'
                 ELSE 'leased' END,
    dead_at = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                   THEN CAST(:now AS DOUBLE PRECISION) END,
    last_error = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                      THEN 'lease expired on attempt ' || attempts ELSE last_error END,
    lease_token = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                       THEN NULL ELSE :lease_token END,
    available_at = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                        THEN available_at ELSE :lease_end END,
    attempts = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                    THEN attempts ELSE attempts + 1 END
WHERE seq IN (
    SELECT seq FROM sk_messages
    WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
      AND available_at <= :now
    ORDER BY available_at, seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
          enqueued_at, last_error, state, dead_at, reply_to;

-- name: queue_send_many
-- Messages without deduplication ids, all in one statement.
INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                         state, available_at, attempts, enqueued_at, reply_to)
SELECT m.id, :namespace, m.queue, m.body, m.attributes, m.correlation_id, m.group_id,
       'ready', m.available_at, 0, :now, m.reply_to
FROM unnest(:m_ids::text[], :m_queues::text[], :m_bodies::bytea[], :m_attributes::text[],
            :m_correlation_ids::text[], :m_groups::text[], :m_available::float8[],
            :m_reply_to::text[]) WITH ORDINALITY
     AS m(id, queue, body, attributes, correlation_id, group_id, available_at, reply_to, ord)
ORDER BY m.ord;

-- name: queue_ack
-- Delete, archive with the result, and send the completion messages (outbox), in one
-- statement: one round trip, all or nothing.
WITH done AS (
    DELETE FROM sk_messages
    WHERE id = :id AND lease_token = :lease_token
    RETURNING id, namespace, queue, body, attributes, correlation_id, group_id, attempts,
              enqueued_at, reply_to
), archived AS (
    INSERT INTO sk_message_archive (id, namespace, queue, body, attributes, correlation_id,
                                    group_id, attempts, enqueued_at, completed_at, reply_to,
                                    result)
    SELECT id, namespace, queue, body, attributes, correlation_id, group_id, attempts,
           enqueued_at, :now, reply_to, :result::bytea
    FROM done WHERE :archive::bool
    ON CONFLICT (id) DO NOTHING
), sent AS (
    INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                             state, available_at, attempts, enqueued_at)
    SELECT m.id, :namespace, m.queue, m.body, m.attributes, m.correlation_id, NULL,
           'ready', :now, 0, :now
    FROM unnest(:m_ids::text[], :m_queues::text[], :m_bodies::bytea[], :m_attributes::text[],
                :m_correlation_ids::text[]) AS m(id, queue, body, attributes, correlation_id)
    WHERE EXISTS (SELECT 1 FROM done)
    RETURNING 1
)
SELECT count(*) FROM done;

-- name: queue_fail
-- Back to ready, or dead; when dead, the completion messages go out in the same statement.
WITH failed AS (
    UPDATE sk_messages
    SET state = CASE WHEN attempts >= :max_attempts THEN 'dead' ELSE 'ready' END,
        dead_at = CASE WHEN attempts >= :max_attempts THEN CAST(:now AS DOUBLE PRECISION) END,
        available_at = :retry_at, last_error = :error, lease_token = NULL
    WHERE id = :id AND lease_token = :lease_token
    RETURNING state
), sent AS (
    INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                             state, available_at, attempts, enqueued_at)
    SELECT m.id, :namespace, m.queue, m.body, m.attributes, m.correlation_id, NULL,
           'ready', :now, 0, :now
    FROM unnest(:m_ids::text[], :m_queues::text[], :m_bodies::bytea[], :m_attributes::text[],
                :m_correlation_ids::text[]) AS m(id, queue, body, attributes, correlation_id)
    WHERE (SELECT state FROM failed) = 'dead'
    RETURNING 1
)
SELECT state FROM failed;

-- name: queue_redrive_ids
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = 0, dead_at = NULL, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND dead_at IS NOT NULL
  AND id = ANY(:ids::text[]);

-- name: queue_send_dedup
-- Claims the deduplication id and enqueues only if the claim was won, in one round trip.
WITH claim AS (
    INSERT INTO sk_queue_dedup (namespace, queue, dedup_id, message_id, expires_at, fingerprint)
    VALUES (:namespace, :queue, :dedup_id, :id, :dedup_expires_at, :fingerprint)
    ON CONFLICT (namespace, queue, dedup_id) DO UPDATE
    SET message_id = excluded.message_id, expires_at = excluded.expires_at,
        fingerprint = excluded.fingerprint
    WHERE sk_queue_dedup.expires_at <= :now
    RETURNING message_id
), sent AS (
    INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                             state, available_at, attempts, enqueued_at, reply_to)
    SELECT :id, :namespace, :queue, :body::bytea, :attributes, :correlation_id, :group_id,
           'ready', :available_at, 0, :now, :reply_to
    WHERE EXISTS (SELECT 1 FROM claim)
    RETURNING id
)
SELECT (SELECT id FROM sent), d.message_id, d.fingerprint
FROM (SELECT 1) AS one
LEFT JOIN sk_queue_dedup d
  ON d.namespace = :namespace AND d.queue = :queue AND d.dedup_id = :dedup_id;
