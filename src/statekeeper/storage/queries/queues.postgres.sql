-- Queue statements that differ on PostgreSQL.

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
-- Grouped messages lock their groups' rows (a trigger) in group order, so that two
-- batches to the same groups never deadlock; each group keeps its order.
ORDER BY m.group_id NULLS FIRST, m.ord;

-- name: queue_redrive_ids
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = 0, dead_at = NULL, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND dead_at IS NOT NULL
  AND id = ANY(:ids::text[]);

-- name: queue_purge_lock_groups
-- A purge takes its queue's group rows first, in group order, as every sender and
-- settler does: its deletes' triggers then never wait on an acknowledgement that waits
-- on them.
SELECT count(*) FROM (
    SELECT 1 FROM sk_queue_groups WHERE namespace = :namespace AND queue = :queue
    ORDER BY group_id FOR UPDATE
) AS locked;

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

-- name: queue_commit_ack
-- A unit of work that only acknowledges a message (the common ack, without outcome
-- messages): sk_commit's ack part as one plain statement. 0 back: the lease is lost.
WITH done AS (
    DELETE FROM sk_messages m WHERE m.id = :id AND m.lease_token = :lease_token
    RETURNING m.id, m.namespace, m.queue, m.body, m.attributes, m.correlation_id,
              m.group_id, m.attempts, m.enqueued_at, m.reply_to
), archived AS (
    INSERT INTO sk_message_archive (id, namespace, queue, body, attributes, correlation_id,
                                    group_id, attempts, enqueued_at, completed_at, reply_to,
                                    result)
    SELECT d.id, d.namespace, d.queue, d.body, d.attributes, d.correlation_id, d.group_id,
           d.attempts, d.enqueued_at, :now, d.reply_to, :result::bytea
    FROM done d WHERE :archive::bool
    ON CONFLICT (id) DO NOTHING
)
SELECT count(*) FROM done;
