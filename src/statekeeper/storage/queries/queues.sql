-- Durable queues, shared by SQLite and PostgreSQL. A message is 'ready' (deliverable
-- from available_at), 'leased' (in flight until available_at, its lease end) or
-- 'dead' (dead-lettered). Acknowledged messages leave the table, for the archive.

-- name: queue_send
INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                         state, available_at, attempts, enqueued_at, reply_to)
VALUES (:id, :namespace, :queue, :body, :attributes, :correlation_id, :group_id,
        'ready', :available_at, 0, :now, :reply_to);

-- name: queue_dedup_claim
-- Claims a deduplication id for a window; no row back means a live claim exists.
INSERT INTO sk_queue_dedup (namespace, queue, dedup_id, message_id, expires_at, fingerprint)
VALUES (:namespace, :queue, :dedup_id, :message_id, :expires_at, :fingerprint)
ON CONFLICT (namespace, queue, dedup_id) DO UPDATE
SET message_id = excluded.message_id, expires_at = excluded.expires_at,
    fingerprint = excluded.fingerprint
WHERE sk_queue_dedup.expires_at <= :now
RETURNING message_id;

-- name: queue_dedup_holder
SELECT message_id, fingerprint FROM sk_queue_dedup
WHERE namespace = :namespace AND queue = :queue AND dedup_id = :dedup_id;

-- name: queue_dead_letter_expired
-- Leases that ran out on their last attempt: dead-lettered instead of redelivered.
UPDATE sk_messages
SET state = 'dead', dead_at = :now, lease_token = NULL,
    last_error = 'lease expired on attempt ' || attempts
WHERE namespace = :namespace AND queue = :queue AND state = 'leased'
  AND available_at <= :now AND attempts >= :max_attempts;

-- name: queue_receive
-- The oldest deliverable messages; a message of a group only when every earlier
-- live message of its group is gone (FIFO per group, one in flight per group).
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
)
RETURNING seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
          enqueued_at, last_error, state, dead_at, reply_to;

-- name: queue_ack_delete
DELETE FROM sk_messages
WHERE namespace = :namespace AND queue = :queue AND id = :id
  AND lease_token = :lease_token AND state = 'leased'
RETURNING id, body, attributes, correlation_id, group_id, attempts, enqueued_at, reply_to;

-- name: queue_archive_insert
INSERT INTO sk_message_archive (id, namespace, queue, body, attributes, correlation_id,
                                group_id, attempts, enqueued_at, completed_at, reply_to, result)
VALUES (:id, :namespace, :queue, :body, :attributes, :correlation_id, :group_id,
        :attempts, :enqueued_at, :now, :reply_to, :result)
ON CONFLICT (id) DO NOTHING;

-- name: queue_fail
-- Back to ready after its backoff, or dead once it has used its attempts.
UPDATE sk_messages
SET state = CASE WHEN attempts >= :max_attempts THEN 'dead' ELSE 'ready' END,
    dead_at = CASE WHEN attempts >= :max_attempts THEN CAST(:now AS DOUBLE PRECISION) END,
    available_at = :retry_at, last_error = :error, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND id = :id
  AND lease_token = :lease_token AND state = 'leased'
RETURNING state;

-- name: queue_extend
UPDATE sk_messages SET available_at = :lease_end
WHERE namespace = :namespace AND queue = :queue AND id = :id
  AND lease_token = :lease_token AND state = 'leased'
RETURNING id;

-- name: queue_release
-- Given back unprocessed (a worker shutting down): deliverable now, attempt not counted.
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = attempts - 1, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND id = :id
  AND lease_token = :lease_token AND state = 'leased'
RETURNING id;

-- name: queue_redrive_all
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = 0, dead_at = NULL, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND state = 'dead';

-- name: queue_purge_ready
DELETE FROM sk_messages WHERE namespace = :namespace AND queue = :queue AND state = 'ready';

-- name: queue_purge_dead
DELETE FROM sk_messages WHERE namespace = :namespace AND queue = :queue AND state = 'dead';

-- name: queue_stats
SELECT
    coalesce(sum(CASE WHEN state <> 'dead' AND available_at <= :now THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN state = 'leased' AND available_at > :now THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN state = 'ready' AND available_at > :now THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0),
    min(CASE WHEN state <> 'dead' THEN enqueued_at END)
FROM sk_messages
WHERE namespace = :namespace AND queue = :queue;

-- name: queue_peek
SELECT seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
       enqueued_at, last_error, state, dead_at, reply_to
FROM sk_messages
WHERE namespace = :namespace AND queue = :queue AND state <> 'dead'
ORDER BY seq
LIMIT :limit;

-- name: queue_peek_dead
SELECT seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
       enqueued_at, last_error, state, dead_at, reply_to
FROM sk_messages
WHERE namespace = :namespace AND queue = :queue AND state = 'dead'
ORDER BY seq
LIMIT :limit;

-- name: queue_next_due
SELECT min(available_at) FROM sk_messages
WHERE namespace = :namespace AND queue = :queue AND state <> 'dead';

-- name: queue_archived
-- Archived messages completed in [since, until), after a (completed_at, id) cursor.
SELECT id, body, attributes, correlation_id, group_id, attempts, enqueued_at, completed_at
FROM sk_message_archive
WHERE namespace = :namespace AND queue = :queue
  AND completed_at >= :since AND completed_at < :until
  AND (completed_at > :after_time OR (completed_at = :after_time AND id > :after_id))
ORDER BY completed_at, id
LIMIT :limit;

-- name: queue_forget_dedup
DELETE FROM sk_queue_dedup WHERE expires_at <= :now;

-- name: queue_forget_archive
DELETE FROM sk_message_archive WHERE completed_at < :before;

-- name: queue_find_live
-- A message of any queue of the namespace, by id: what a request status reports.
SELECT queue, state, attempts, available_at, enqueued_at, last_error, dead_at
FROM sk_messages WHERE namespace = :namespace AND id = :id;

-- name: queue_find_archived
SELECT queue, attempts, enqueued_at, completed_at, result
FROM sk_message_archive WHERE namespace = :namespace AND id = :id;
