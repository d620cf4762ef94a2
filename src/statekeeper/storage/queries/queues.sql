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

-- name: queue_receive
-- The first messages (up to the limit) of the ready order (sk_messages_due: due time,
-- then enqueue order), which holds ready messages and leased ones under their lease end:
-- the range up to now is what is deliverable, nothing else is read. Messages waiting
-- behind their group's head are not in the index. A lease that ran out on the last
-- attempt is leased again without counting an attempt, marked by dead_at (which a live
-- message otherwise never has): the caller dead-letters it at once, with its error and
-- its outcome announced in that same transaction (a crash in between only repeats this).
-- On PostgreSQL, SKIP LOCKED: receivers in many processes lease different messages,
-- never waiting on each other. A queue with a concurrency limit (sk_queue_limits) leases
-- no more than the limit leaves (its leased messages under a live lease counted through
-- sk_messages_leased; on PostgreSQL by sk_queue_cap, under the queue's advisory lock).
UPDATE sk_messages
SET state = 'leased', lease_token = :lease_token, available_at = :lease_end,
    dead_at = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                   THEN CAST(:now AS DOUBLE PRECISION) END,
    attempts = CASE WHEN state = 'leased' AND attempts >= :max_attempts
                    THEN attempts ELSE attempts + 1 END
WHERE seq IN (
    SELECT seq FROM sk_messages
    WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
      AND available_at <= :now
    ORDER BY available_at, seq
    -- sqlite: LIMIT coalesce((
    -- sqlite:     SELECT max(0, min(:limit, l.concurrency - (
    -- sqlite:         SELECT count(*) FROM sk_messages c
    -- sqlite:         WHERE c.namespace = :namespace AND c.queue = :queue
    -- sqlite:           AND c.state = 'leased' AND c.available_at > :now)))
    -- sqlite:     FROM sk_queue_limits l
    -- sqlite:     WHERE l.namespace = :namespace AND l.queue = :queue
    -- sqlite:       AND l.concurrency IS NOT NULL), :limit)
    -- postgres: LIMIT sk_queue_cap(:namespace, :queue, CAST(:limit AS INTEGER),
    -- postgres:                    CAST(:now AS DOUBLE PRECISION))
    -- postgres: FOR UPDATE SKIP LOCKED
)
RETURNING seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
          enqueued_at, last_error, state, dead_at, reply_to;

-- Statements on one leased message find it by its id alone (unique) and its lease
-- token, which is set only while the message is leased and only its receiver knows: no
-- condition of theirs lets the planner prefer a partial index of the queue (whose
-- statistics may say "empty" while a backlog builds up), so each stays one row.

-- name: queue_ack_delete
-- (The unit of work's acknowledgement on SQLite; PostgreSQL's is in sk_commit.)
DELETE FROM sk_messages
WHERE id = :id AND lease_token = :lease_token
RETURNING id, body, attributes, correlation_id, group_id, attempts, enqueued_at, reply_to;

-- name: queue_archive_insert
INSERT INTO sk_message_archive (id, namespace, queue, body, attributes, correlation_id,
                                group_id, attempts, enqueued_at, completed_at, reply_to, result)
VALUES (:id, :namespace, :queue, :body, :attributes, :correlation_id, :group_id,
        :attempts, :enqueued_at, :now, :reply_to, :result)
ON CONFLICT (id) DO NOTHING;

-- name: queue_settle
-- A leased message back to ready at :retry_at, or dead-lettered, with its error (the
-- unit of work's settlement on SQLite; PostgreSQL's is in sk_commit).
UPDATE sk_messages
SET state = :state,
    dead_at = CASE WHEN :state = 'dead' THEN CAST(:now AS DOUBLE PRECISION) END,
    available_at = CASE WHEN :state = 'dead' THEN available_at ELSE :retry_at END,
    last_error = :error, lease_token = NULL
WHERE id = :id AND lease_token = :lease_token
RETURNING id;

-- name: queue_extend
UPDATE sk_messages SET available_at = :lease_end
WHERE id = :id AND lease_token = :lease_token
RETURNING id;

-- name: queue_release
-- Given back unprocessed (a worker shutting down): deliverable now, attempt not counted.
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = attempts - 1, lease_token = NULL
WHERE id = :id AND lease_token = :lease_token
RETURNING id;

-- name: queue_redrive_all
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = 0, dead_at = NULL, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND state = 'dead';

-- name: queue_purge_waiting
-- Before the ready ones, so that no head's leaving promotes a message purged next.
DELETE FROM sk_messages WHERE namespace = :namespace AND queue = :queue AND state = 'waiting';

-- name: queue_purge_ready
DELETE FROM sk_messages
WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
  AND state = 'ready';

-- name: queue_purge_dead
DELETE FROM sk_messages WHERE namespace = :namespace AND queue = :queue AND state = 'dead';

-- name: queue_stats
-- Each count reads one partial index's range of this queue (O(messages of the queue)).
SELECT
    (SELECT count(*) FROM sk_messages
     WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
       AND available_at <= :now),
    (SELECT count(*) FROM sk_messages
     WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
       AND available_at > :now AND state = 'leased'),
    (SELECT count(*) FROM sk_messages
     WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
       AND available_at > :now AND state = 'ready'),
    (SELECT count(*) FROM sk_messages
     WHERE namespace = :namespace AND queue = :queue AND state = 'dead'),
    (SELECT count(*) FROM sk_messages
     WHERE namespace = :namespace AND queue = :queue AND state = 'waiting'),
    (SELECT min(enqueued_at) FROM sk_messages
     WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased'));

-- name: queue_peek
-- Live messages in delivery order, then those waiting behind their group's head.
SELECT * FROM (
    SELECT seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
           enqueued_at, last_error, state, dead_at, reply_to
    FROM sk_messages
    WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased')
    ORDER BY available_at, seq
    LIMIT :limit
) AS due
UNION ALL
SELECT * FROM (
    SELECT seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
           enqueued_at, last_error, state, dead_at, reply_to
    FROM sk_messages
    WHERE namespace = :namespace AND queue = :queue AND state = 'waiting'
    ORDER BY group_id, seq
    LIMIT :limit
) AS waiting
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
WHERE namespace = :namespace AND queue = :queue AND state IN ('ready', 'leased');

-- name: queue_archived
-- Archived messages completed in [since, until), after a (completed_at, id) cursor.
SELECT id, body, attributes, correlation_id, group_id, attempts, enqueued_at, completed_at
FROM sk_message_archive
WHERE namespace = :namespace AND queue = :queue
  AND completed_at >= :since AND completed_at < :until
  AND (completed_at, id) > (:after_time, :after_id)
ORDER BY completed_at, id
LIMIT :limit;

-- name: queue_forget_dedup
-- A bounded batch at a time, so one purge never holds a long transaction; oldest first,
-- in the order of the index it reads (so no plan prefers reading the whole table).
DELETE FROM sk_queue_dedup
WHERE (namespace, queue, dedup_id) IN (
    SELECT namespace, queue, dedup_id FROM sk_queue_dedup WHERE expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
);

-- name: queue_forget_archive
DELETE FROM sk_message_archive
WHERE id IN (
    SELECT id FROM sk_message_archive WHERE completed_at < :before
    ORDER BY completed_at
    LIMIT :limit
);

-- name: queue_find_live
-- A message by id: what a request status reports (the caller checks the namespace; by
-- the unique id alone, so no other index can look cheaper).
SELECT namespace, queue, state, attempts, available_at, enqueued_at, last_error, dead_at
FROM sk_messages WHERE id = :id;

-- name: queue_find_archived
SELECT namespace, queue, attempts, enqueued_at, completed_at, result
FROM sk_message_archive WHERE id = :id;

-- name: queue_names_held
-- The queues of a namespace that hold messages, live or dead (what /metrics and
-- `statekeeper top` show): a loose scan of the partial indexes sk_messages_due and
-- sk_messages_dead, one probe per queue however many messages each holds.
WITH RECURSIVE live(queue) AS (
    SELECT min(queue) FROM sk_messages
    WHERE namespace = :namespace AND state IN ('ready', 'leased')
    UNION ALL
    SELECT (SELECT min(m.queue) FROM sk_messages m
            WHERE m.namespace = :namespace AND m.state IN ('ready', 'leased')
              AND m.queue > live.queue)
    FROM live WHERE live.queue IS NOT NULL
), dead(queue) AS (
    SELECT min(queue) FROM sk_messages
    WHERE namespace = :namespace AND state = 'dead'
    UNION ALL
    SELECT (SELECT min(m.queue) FROM sk_messages m
            WHERE m.namespace = :namespace AND m.state = 'dead' AND m.queue > dead.queue)
    FROM dead WHERE dead.queue IS NOT NULL
)
SELECT queue FROM live WHERE queue IS NOT NULL
UNION
SELECT queue FROM dead WHERE queue IS NOT NULL;
