-- Messages to running workflows (workflows/mailbox.py, updates.py, values.py).
--
-- Mailbox: sk_workflow_messages holds what was sent to a workflow on a topic, numbered
-- 1, 2, 3... per topic in the order the sends committed (each send locks the
-- workflow's row first, so concurrent senders take their numbers one at a time). A
-- receive journals the number it consumed (in the entry's attempts column, plain, so
-- SQL can read it); the run reads past the highest number its journal consumed, and a
-- continue as new deletes the consumed messages with the journal.
--
-- Updates: sk_workflow_updates holds each update asked of a workflow, pending until a
-- run applies it; the run journals it and settles its row (accepted with its result,
-- or rejected with the handler's error) in one transaction under its fence.
--
-- Published values: sk_workflow_values holds the last value published under each key,
-- written with the journal entry of its publish.

-- name: wfm_wake_for_message
-- A send locks the workflow's row (so that the numbering and a run's suspension are
-- ordered) and wakes it when it waits on this topic; no row back: it has finished or
-- does not exist.
UPDATE sk_workflows
SET updated_at = :now,
    wake_at = CASE WHEN status = 'waiting' AND waiting_for = :waiting_for
                   THEN CAST(:now AS DOUBLE PRECISION) ELSE wake_at END
WHERE namespace = :namespace AND id = :id
  AND status IN ('pending', 'running', 'sleeping', 'waiting')
RETURNING id;

-- name: wfm_insert_message
INSERT INTO sk_workflow_messages (namespace, workflow_id, topic, seq, data, sent_at)
SELECT :namespace, :id, :topic, coalesce(max(seq), 0) + 1,
       -- sqlite: :data,
       -- postgres: CAST(:data AS BYTEA),
       CAST(:now AS DOUBLE PRECISION)
FROM sk_workflow_messages
WHERE namespace = :namespace AND workflow_id = :id AND topic = :topic
RETURNING seq;

-- name: wfm_mailbox_page
-- A workflow's whole mailbox, consumed or not, a page at a time in key order (a fork
-- copies it).
SELECT topic, seq, data, sent_at FROM sk_workflow_messages
WHERE namespace = :namespace AND workflow_id = :id AND (topic, seq) > (:after_topic, :after_seq)
ORDER BY topic, seq
LIMIT :limit;

-- name: wfm_copy_message
INSERT INTO sk_workflow_messages (namespace, workflow_id, topic, seq, data, sent_at)
VALUES (:namespace, :id, :topic, :seq, :data, :sent_at);

-- name: wfm_next_message
-- The first message on a topic after the last one the run consumed (the key's range).
SELECT seq, data FROM sk_workflow_messages
WHERE namespace = :namespace AND workflow_id = :id AND topic = :topic AND seq > :after
ORDER BY seq
LIMIT 1;

-- name: wfm_lock
-- The first statement of a run's own suspension: the fence holds, and the workflow's
-- row is locked before wfm_suspend reads whether anything arrived, so a send either
-- committed before (wfm_suspend sees it) or waits and then finds the run waiting.
UPDATE sk_workflows SET updated_at = :now
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
RETURNING id;

-- name: wfm_suspend
-- Ends the run, sleeping or waiting (as wf_suspend), due at once if a cancel was asked,
-- a message on the topic waited for came (:topic NULL: none is waited for), the event
-- waited for came (:event NULL: none) or an update is pending (:updates 1: the run
-- applies updates here); else at :wake_at, or at the workflow's deadline if that comes
-- first.
UPDATE sk_workflows
SET status = :status, owner = NULL, lease_expires_at = NULL, waiting_for = :waiting_for,
    updated_at = :now,
    wake_at = CASE
        WHEN cancel_requested = 1 THEN CAST(:now AS DOUBLE PRECISION)
        WHEN CAST(:topic AS TEXT) IS NOT NULL AND EXISTS (
            SELECT 1 FROM sk_workflow_messages m
            WHERE m.namespace = :namespace AND m.workflow_id = :id AND m.topic = :topic
              AND m.seq > :after)
        THEN CAST(:now AS DOUBLE PRECISION)
        WHEN CAST(:event AS TEXT) IS NOT NULL AND EXISTS (
            SELECT 1 FROM sk_workflow_events e
            WHERE e.namespace = :namespace AND e.workflow_id = :id AND e.name = :event)
        THEN CAST(:now AS DOUBLE PRECISION)
        WHEN CAST(:updates AS INTEGER) = 1 AND EXISTS (
            SELECT 1 FROM sk_workflow_updates u
            WHERE u.namespace = :namespace AND u.workflow_id = :id AND u.status = 'pending')
        THEN CAST(:now AS DOUBLE PRECISION)
        WHEN deadline IS NOT NULL
             AND (CAST(:wake_at AS DOUBLE PRECISION) IS NULL OR deadline < :wake_at)
        THEN deadline
        ELSE CAST(:wake_at AS DOUBLE PRECISION) END
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
RETURNING id;

-- name: wfm_continue_messages
-- A continued run's consumed messages: those numbered up to the highest its journal
-- consumed on their topic (run before its journal is deleted).
DELETE FROM sk_workflow_messages
WHERE namespace = :namespace AND workflow_id = :id
  AND seq <= (
      SELECT max(s.attempts) FROM sk_workflow_steps s
      WHERE s.namespace = :namespace AND s.workflow_id = :id
        AND s.kind = 'receive' AND s.name = sk_workflow_messages.topic);

-- name: wfm_purge_messages
DELETE FROM sk_workflow_messages WHERE namespace = :namespace AND workflow_id = :id;

-- name: wfm_wake_for_update
-- An update locks the workflow's row and wakes it from a sleep or a wait (its run
-- applies pending updates where it waits); no row back: it has finished or does not
-- exist.
UPDATE sk_workflows
SET updated_at = :now,
    wake_at = CASE WHEN status IN ('sleeping', 'waiting')
                   THEN CAST(:now AS DOUBLE PRECISION) ELSE wake_at END
WHERE namespace = :namespace AND id = :id
  AND status IN ('pending', 'running', 'sleeping', 'waiting')
RETURNING id;

-- name: wfm_insert_update
INSERT INTO sk_workflow_updates (namespace, workflow_id, seq, name, data, status,
                                 requested_at)
SELECT :namespace, :id, coalesce(max(seq), 0) + 1, :name,
       -- sqlite: :data,
       -- postgres: CAST(:data AS BYTEA),
       'pending', CAST(:now AS DOUBLE PRECISION)
FROM sk_workflow_updates
WHERE namespace = :namespace AND workflow_id = :id
RETURNING seq;

-- name: wfm_pending_updates
SELECT seq, name, data FROM sk_workflow_updates
WHERE namespace = :namespace AND workflow_id = :id AND status = 'pending'
ORDER BY seq
LIMIT :limit;

-- name: wfm_settle_update
UPDATE sk_workflow_updates
SET status = :status, result = :result, error = :error, finished_at = :now
WHERE namespace = :namespace AND workflow_id = :id AND seq = :seq AND status = 'pending';

-- name: wfm_finish_updates
-- A run's end settles the updates it has not applied as not applied (in the finish's
-- transaction): a retry or a rewind of the run never applies them later.
UPDATE sk_workflow_updates
SET status = 'not_applied', finished_at = :now
WHERE namespace = :namespace AND workflow_id = :id AND status = 'pending';

-- name: wfm_get_update
SELECT status, result, error FROM sk_workflow_updates
WHERE namespace = :namespace AND workflow_id = :id AND seq = :seq;

-- name: wfm_continue_updates
-- A continued run forgets its updates settled before :settled_before (their callers had
-- their answers), keeping the last one: update numbers go on from it, never reused.
DELETE FROM sk_workflow_updates
WHERE namespace = :namespace AND workflow_id = :id AND status <> 'pending'
  AND finished_at < :settled_before
  AND seq < (SELECT max(u.seq) FROM sk_workflow_updates u
             WHERE u.namespace = :namespace AND u.workflow_id = :id);

-- name: wfm_purge_updates
DELETE FROM sk_workflow_updates WHERE namespace = :namespace AND workflow_id = :id;

-- name: wfm_put_value
INSERT INTO sk_workflow_values (namespace, workflow_id, key, value, updated_at)
VALUES (:namespace, :id, :key, :value, :now)
ON CONFLICT (namespace, workflow_id, key) DO UPDATE
SET value = excluded.value, updated_at = excluded.updated_at;

-- name: wfm_get_value
SELECT value, updated_at FROM sk_workflow_values
WHERE namespace = :namespace AND workflow_id = :id AND key = :key;

-- name: wfm_list_values
-- A workflow's published values by key, a page after :after (the key's range).
SELECT key, value, updated_at FROM sk_workflow_values
WHERE namespace = :namespace AND workflow_id = :id AND key > :after
ORDER BY key
LIMIT :limit;

-- name: wfm_purge_values
DELETE FROM sk_workflow_values WHERE namespace = :namespace AND workflow_id = :id;

-- name: wfs_append
-- The next value of a durable stream (seq: one past the last), or its closing row
-- (:stream_value NULL); nothing once the stream is closed (its last row has no value).
INSERT INTO sk_workflow_streams (namespace, workflow_id, key, seq, value, run, position,
                                 written_at)
SELECT :namespace, :id, :stream_key, COALESCE(last.seq, -1) + 1, :stream_value,
       :stream_run, :position, :now
FROM (SELECT 1 AS here) AS here
LEFT JOIN (
    SELECT seq, value FROM sk_workflow_streams
    WHERE namespace = :namespace AND workflow_id = :id AND key = :stream_key
    ORDER BY seq DESC
    LIMIT 1
) AS last ON 1 = 1
WHERE last.seq IS NULL OR last.value IS NOT NULL;

-- name: wfs_read
-- A durable stream's rows from an offset, in order (the primary key's range).
SELECT seq, value, run, position FROM sk_workflow_streams
WHERE namespace = :namespace AND workflow_id = :id AND key = :key AND seq >= :offset
ORDER BY seq
LIMIT :limit;

-- name: wfs_forget_from
-- A rewound workflow's stream values written from a position on in its current run.
DELETE FROM sk_workflow_streams
WHERE namespace = :namespace AND workflow_id = :id AND position >= :position
  AND run = COALESCE((SELECT attempts FROM sk_workflow_steps
                      WHERE namespace = :namespace AND workflow_id = :id AND position = 0), 0);

-- name: wfs_purge
DELETE FROM sk_workflow_streams WHERE namespace = :namespace AND workflow_id = :id;
