-- Re-sealing stored payloads under the primary encryption key (statekeeper reencrypt).
-- Each scan returns only rows holding a value that does not begin the way the primary
-- key's envelope begins (:bytes_prefix for BLOB/bytea columns, :text_prefix for TEXT
-- columns, :primary for a state row's key_id): a rerun skips what is done. NULL columns
-- have nothing to seal.
--
-- A scan reads ONE namespace: the range `namespace = :namespace` of an index whose first
-- column is namespace (the primary key but for the archive), from a cursor on the rest of
-- that index, in its order, up to :limit rows. Both are index conditions, so a batch reads
-- its rows and the done ones between them, however big the table or the namespace. The
-- scans run through run_in_order (storage/runner.py), so that PostgreSQL walks the index
-- even when stale statistics make reading the whole range and sorting it look cheaper.
-- For every namespace, reencrypt walks a table's namespaces one after another, the next
-- found by reseal_next_namespace_<kind> (one probe of such an index). (A filter
-- `(:every_namespace = 1 OR namespace = :namespace)` is no index condition: planners went
-- through another index and sorted the rest of the namespace for every batch.)
--
-- sk_messages has no index on every row that begins with namespace (its namespace
-- indexes are partial, by state), so it is the exception: its scan walks the primary key
-- (seq) across namespaces, the namespace only a filter. A batch then also reads the other
-- namespaces' rows between its own, but a whole walk reads the table once; for every
-- namespace it is one walk (a walk per namespace would read the table per namespace). The
-- table holds live and dead-lettered messages only (an acknowledged one leaves it), and
-- an index for this alone would cost every send.
--
-- Each update is a compare-and-swap on the old bytes: a value changed meanwhile stays.
--
-- Columns that may hold a reference to a blob (:ref_prefix, statekeeper.blobs) skip it:
-- a reference is stored as it is (the blob's chunks are sealed, and re-sealed as
-- blob_chunks).

-- name: reseal_scan_state
SELECT namespace, key, value, key_id
FROM sk_state
WHERE namespace = :namespace AND key > :after_key
  AND ((key_id IS NULL AND substr(value, 1, 4) <> :ref_prefix) OR key_id <> :primary)
ORDER BY key
LIMIT :limit;

-- name: reseal_scan_messages
-- Along seq (see above): :every_namespace = 1 walks every namespace at once.
SELECT seq, namespace, id, body, attributes, reply_to, last_error
FROM sk_messages
WHERE seq > :after_seq
  AND (:every_namespace = 1 OR namespace = :namespace)
  AND (substr(body, 1, :bytes_len) <> :bytes_prefix
       OR substr(attributes, 1, :text_len) <> :text_prefix
       OR substr(reply_to, 1, :text_len) <> :text_prefix
       OR substr(last_error, 1, :text_len) <> :text_prefix)
ORDER BY seq
LIMIT :limit;

-- name: reseal_scan_archive
-- The primary key (id) does not begin with namespace; sk_message_archive_time
-- (namespace, queue, completed_at, id) does, holds every row, and ends with the unique
-- id, so it orders a namespace's rows totally. An archived row is never updated but to
-- be re-sealed (which leaves those columns alone), so no row moves under the cursor.
SELECT id, namespace, queue, completed_at, body, result, attributes, reply_to
FROM sk_message_archive
WHERE namespace = :namespace
  AND (queue, completed_at, id) > (:after_queue, :after_completed_at, :after_id)
  AND (substr(body, 1, :bytes_len) <> :bytes_prefix
       OR substr(result, 1, :bytes_len) <> :bytes_prefix
       OR substr(attributes, 1, :text_len) <> :text_prefix
       OR substr(reply_to, 1, :text_len) <> :text_prefix)
ORDER BY queue, completed_at, id
LIMIT :limit;

-- name: reseal_scan_idempotency
SELECT namespace, key, result
FROM sk_idempotency
WHERE namespace = :namespace AND key > :after_key
  AND substr(result, 1, :bytes_len) <> :bytes_prefix AND substr(result, 1, 4) <> :ref_prefix
ORDER BY key
LIMIT :limit;

-- name: reseal_scan_workflows
SELECT namespace, id, input, output, error
FROM sk_workflows
WHERE namespace = :namespace AND id > :after_id
  AND ((substr(input, 1, :bytes_len) <> :bytes_prefix AND substr(input, 1, 4) <> :ref_prefix)
       OR (substr(output, 1, :bytes_len) <> :bytes_prefix AND substr(output, 1, 4) <> :ref_prefix)
       OR substr(error, 1, :text_len) <> :text_prefix)
ORDER BY id
LIMIT :limit;

-- name: reseal_scan_steps
SELECT namespace, workflow_id, position, input, output, error
FROM sk_workflow_steps
WHERE namespace = :namespace
  AND (workflow_id, position) > (:after_workflow_id, :after_position)
  AND ((substr(input, 1, :bytes_len) <> :bytes_prefix AND substr(input, 1, 4) <> :ref_prefix)
       OR (substr(output, 1, :bytes_len) <> :bytes_prefix AND substr(output, 1, 4) <> :ref_prefix)
       OR substr(error, 1, :text_len) <> :text_prefix)
ORDER BY workflow_id, position
LIMIT :limit;

-- name: reseal_scan_events
SELECT namespace, workflow_id, name, data
FROM sk_workflow_events
WHERE namespace = :namespace AND (workflow_id, name) > (:after_workflow_id, :after_name)
  AND substr(data, 1, :bytes_len) <> :bytes_prefix AND substr(data, 1, 4) <> :ref_prefix
ORDER BY workflow_id, name
LIMIT :limit;

-- name: reseal_scan_workflow_messages
SELECT namespace, workflow_id, topic, seq, data
FROM sk_workflow_messages
WHERE namespace = :namespace
  AND (workflow_id, topic, seq) > (:after_workflow_id, :after_topic, :after_seq)
  AND substr(data, 1, :bytes_len) <> :bytes_prefix AND substr(data, 1, 4) <> :ref_prefix
ORDER BY workflow_id, topic, seq
LIMIT :limit;

-- name: reseal_scan_workflow_updates
SELECT namespace, workflow_id, seq, name, data, result, error
FROM sk_workflow_updates
WHERE namespace = :namespace AND (workflow_id, seq) > (:after_workflow_id, :after_seq)
  AND ((substr(data, 1, :bytes_len) <> :bytes_prefix AND substr(data, 1, 4) <> :ref_prefix)
       OR (substr(result, 1, :bytes_len) <> :bytes_prefix
           AND substr(result, 1, 4) <> :ref_prefix)
       OR substr(error, 1, :text_len) <> :text_prefix)
ORDER BY workflow_id, seq
LIMIT :limit;

-- name: reseal_scan_workflow_values
SELECT namespace, workflow_id, key, value
FROM sk_workflow_values
WHERE namespace = :namespace AND (workflow_id, key) > (:after_workflow_id, :after_key)
  AND substr(value, 1, :bytes_len) <> :bytes_prefix AND substr(value, 1, 4) <> :ref_prefix
ORDER BY workflow_id, key
LIMIT :limit;

-- name: reseal_scan_workflow_streams
-- A closing row (no value) has nothing to re-seal.
SELECT namespace, workflow_id, key, seq, value, run, position
FROM sk_workflow_streams
WHERE namespace = :namespace
  AND (workflow_id, key, seq) > (:after_workflow_id, :after_key, :after_seq)
  AND substr(value, 1, :bytes_len) <> :bytes_prefix AND substr(value, 1, 4) <> :ref_prefix
ORDER BY workflow_id, key, seq
LIMIT :limit;

-- name: reseal_scan_schedules
SELECT namespace, id, input
FROM sk_schedules
WHERE namespace = :namespace AND id > :after_id
  AND substr(input, 1, :bytes_len) <> :bytes_prefix AND substr(input, 1, 4) <> :ref_prefix
ORDER BY id
LIMIT :limit;

-- name: reseal_scan_stream_events
SELECT namespace, position, stream, id, data
FROM sk_events
WHERE namespace = :namespace AND position > :after_position
  AND substr(data, 1, :bytes_len) <> :bytes_prefix AND substr(data, 1, 4) <> :ref_prefix
ORDER BY position
LIMIT :limit;

-- name: reseal_scan_snapshots
SELECT namespace, stream, version, data
FROM sk_event_snapshots
WHERE namespace = :namespace AND stream > :after_stream
  AND substr(data, 1, :bytes_len) <> :bytes_prefix AND substr(data, 1, 4) <> :ref_prefix
ORDER BY stream
LIMIT :limit;

-- The first namespace after :after_namespace ('': the first of all) that has rows in a table: one
-- probe of an index whose first column is namespace; no row when none is left.

-- name: reseal_next_namespace_state
SELECT namespace FROM sk_state WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_archive
SELECT namespace FROM sk_message_archive WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_idempotency
SELECT namespace FROM sk_idempotency WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_workflows
SELECT namespace FROM sk_workflows WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_steps
SELECT namespace FROM sk_workflow_steps WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_events
SELECT namespace FROM sk_workflow_events WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_workflow_messages
SELECT namespace FROM sk_workflow_messages WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_workflow_updates
SELECT namespace FROM sk_workflow_updates WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_workflow_values
SELECT namespace FROM sk_workflow_values WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_workflow_streams
SELECT namespace FROM sk_workflow_streams WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_schedules
SELECT namespace FROM sk_schedules WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_stream_events
SELECT namespace FROM sk_events WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_snapshots
SELECT namespace FROM sk_event_snapshots WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_state_value
-- A state value keeps its ETag: re-sealing does not change what it holds.
UPDATE sk_state SET value = :new, key_id = :key_id
WHERE namespace = :namespace AND key = :key AND value = :old;

-- name: reseal_scan_blob_chunks
-- Along the chunks' primary key across namespaces (a chunk's namespace is its blob's),
-- as messages along seq: :every_namespace = 1 walks every namespace at once.
-- The blob's namespace and chunk count come by its primary key, row by row, so the walk
-- stays one read of the chunks' primary key in order.
SELECT c.blob_id, c.seq,
       (SELECT b.namespace FROM sk_blobs b WHERE b.id = c.blob_id),
       (SELECT b.chunks FROM sk_blobs b WHERE b.id = c.blob_id),
       c.data
FROM sk_blob_chunks c
WHERE (c.blob_id, c.seq) > (:after_blob_id, :after_seq)
  AND (SELECT b.chunks FROM sk_blobs b WHERE b.id = c.blob_id) IS NOT NULL  -- complete
  AND (:every_namespace = 1
       OR (SELECT b.namespace FROM sk_blobs b WHERE b.id = c.blob_id) = :namespace)
  AND substr(c.data, 1, :bytes_len) <> :bytes_prefix
ORDER BY c.blob_id, c.seq
LIMIT :limit;

-- name: reseal_blob_chunks_data
UPDATE sk_blob_chunks SET data = :new WHERE blob_id = :blob_id AND seq = :seq AND data = :old;

-- name: reseal_messages_body
UPDATE sk_messages SET body = :new WHERE seq = :seq AND body = :old;

-- name: reseal_messages_attributes
UPDATE sk_messages SET attributes = :new WHERE seq = :seq AND attributes = :old;

-- name: reseal_messages_reply_to
UPDATE sk_messages SET reply_to = :new WHERE seq = :seq AND reply_to = :old;

-- name: reseal_messages_last_error
UPDATE sk_messages SET last_error = :new WHERE seq = :seq AND last_error = :old;

-- name: reseal_archive_body
UPDATE sk_message_archive SET body = :new WHERE id = :id AND body = :old;

-- name: reseal_archive_result
UPDATE sk_message_archive SET result = :new WHERE id = :id AND result = :old;

-- name: reseal_archive_attributes
UPDATE sk_message_archive SET attributes = :new WHERE id = :id AND attributes = :old;

-- name: reseal_archive_reply_to
UPDATE sk_message_archive SET reply_to = :new WHERE id = :id AND reply_to = :old;

-- name: reseal_idempotency_result
UPDATE sk_idempotency SET result = :new
WHERE namespace = :namespace AND key = :key AND result = :old;

-- name: reseal_workflows_input
UPDATE sk_workflows SET input = :new
WHERE namespace = :namespace AND id = :id AND input = :old;

-- name: reseal_workflows_output
UPDATE sk_workflows SET output = :new
WHERE namespace = :namespace AND id = :id AND output = :old;

-- name: reseal_workflows_error
UPDATE sk_workflows SET error = :new
WHERE namespace = :namespace AND id = :id AND error = :old;

-- name: reseal_steps_input
UPDATE sk_workflow_steps SET input = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND position = :position
  AND input = :old;

-- name: reseal_steps_output
UPDATE sk_workflow_steps SET output = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND position = :position
  AND output = :old;

-- name: reseal_steps_error
UPDATE sk_workflow_steps SET error = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND position = :position
  AND error = :old;

-- name: reseal_events_data
UPDATE sk_workflow_events SET data = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND name = :name AND data = :old;

-- name: reseal_workflow_messages_data
UPDATE sk_workflow_messages SET data = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND topic = :topic
  AND seq = :seq AND data = :old;

-- name: reseal_workflow_updates_data
UPDATE sk_workflow_updates SET data = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND seq = :seq AND data = :old;

-- name: reseal_workflow_updates_result
UPDATE sk_workflow_updates SET result = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND seq = :seq AND result = :old;

-- name: reseal_workflow_updates_error
UPDATE sk_workflow_updates SET error = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND seq = :seq AND error = :old;

-- name: reseal_workflow_values_value
UPDATE sk_workflow_values SET value = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND key = :key AND value = :old;

-- name: reseal_workflow_streams_value
UPDATE sk_workflow_streams SET value = :new
WHERE namespace = :namespace AND workflow_id = :workflow_id AND key = :key AND seq = :seq
  AND value = :old;

-- name: reseal_schedules_input
-- The version moves on: a scheduler or an operator that read the schedule before (and
-- would write its input back under the old key) fails its write and reads it again.
UPDATE sk_schedules SET input = :new, version = version + 1
WHERE namespace = :namespace AND id = :id AND input = :old;

-- name: reseal_stream_events_data
UPDATE sk_events SET data = :new
WHERE namespace = :namespace AND position = :position AND data = :old;

-- name: reseal_snapshots_data
UPDATE sk_event_snapshots SET data = :new
WHERE namespace = :namespace AND stream = :stream AND data = :old;

-- name: reseal_scan_entities
SELECT namespace, type, key, state
FROM sk_entities
WHERE namespace = :namespace AND (type, key) > (:after_type, :after_key)
  AND substr(state, 1, :bytes_len) <> :bytes_prefix AND substr(state, 1, 4) <> :ref_prefix
ORDER BY type, key
LIMIT :limit;

-- name: reseal_scan_entity_calls
SELECT namespace, type, key, call_id, result, error
FROM sk_entity_calls
WHERE namespace = :namespace
  AND (type, key, call_id) > (:after_type, :after_key, :after_call_id)
  AND ((substr(result, 1, :bytes_len) <> :bytes_prefix
        AND substr(result, 1, 4) <> :ref_prefix)
       OR substr(error, 1, :text_len) <> :text_prefix)
ORDER BY type, key, call_id
LIMIT :limit;

-- name: reseal_next_namespace_entities
SELECT namespace FROM sk_entities WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_next_namespace_entity_calls
SELECT namespace FROM sk_entity_calls WHERE namespace > :after_namespace ORDER BY namespace LIMIT 1;

-- name: reseal_entities_state
-- The version stays: re-sealing does not change what the entity holds, and its writer's
-- commit (fenced by the lease, not by the old bytes) replaces the state anyway.
UPDATE sk_entities SET state = :new
WHERE namespace = :namespace AND type = :type AND key = :key AND state = :old;

-- name: reseal_entity_calls_result
UPDATE sk_entity_calls SET result = :new
WHERE namespace = :namespace AND type = :type AND key = :key AND call_id = :call_id
  AND result = :old;

-- name: reseal_entity_calls_error
UPDATE sk_entity_calls SET error = :new
WHERE namespace = :namespace AND type = :type AND key = :key AND call_id = :call_id
  AND error = :old;
