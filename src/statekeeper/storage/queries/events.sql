-- The event store: streams, the global log, snapshots (event_ops.py), and what an
-- append does on SQLite (unit.py; PostgreSQL calls sk_events_append, migration 0012).

-- name: ev_stream_version
SELECT version FROM sk_event_streams WHERE namespace = :namespace AND stream = :stream;

-- name: ev_stream_bump
-- SQLite's append: the stream's version moved up by ``count`` if it is ``expected``
-- (below 0: whatever it is); the new version back, nothing if the stream is elsewhere.
UPDATE sk_event_streams SET version = version + :count, updated_at = :now
WHERE namespace = :namespace AND stream = :stream AND (:expected < 0 OR version = :expected)
RETURNING version;

-- name: ev_stream_create
-- SQLite's append to a new stream: its version back, nothing if the stream exists.
INSERT INTO sk_event_streams (namespace, stream, version, updated_at)
VALUES (:namespace, :stream, :count, :now)
ON CONFLICT (namespace, stream) DO NOTHING
RETURNING version;

-- name: ev_stream_set
-- The stream's version after an append (SQLite: the writer thread checked it first).
INSERT INTO sk_event_streams (namespace, stream, version, updated_at)
VALUES (:namespace, :stream, :version, :now)
ON CONFLICT (namespace, stream) DO UPDATE SET version = :version, updated_at = :now;

-- name: ev_log_take
-- Take ``count`` global positions; the last one back.
INSERT INTO sk_event_log AS l (namespace, position) VALUES (:namespace, :count)
ON CONFLICT (namespace) DO UPDATE SET position = l.position + :count
RETURNING position;

-- name: ev_insert
INSERT INTO sk_events (namespace, position, stream, version, category, id, type, data,
                       metadata, recorded_at)
VALUES (:namespace, :position, :stream, :version, :category, :id, :type, :data, :metadata,
        :now);

-- name: ev_head
-- The last global position given out (0: none).
SELECT position FROM sk_event_log WHERE namespace = :namespace;

-- name: ev_read_stream
-- A stream's events from version ``low`` up, in order.
SELECT position, stream, version, id, type, data, metadata, recorded_at FROM sk_events
WHERE namespace = :namespace AND stream = :stream AND version >= :low
ORDER BY version
LIMIT :limit;

-- name: ev_read_stream_back
-- A stream's events from version ``high`` down.
SELECT position, stream, version, id, type, data, metadata, recorded_at FROM sk_events
WHERE namespace = :namespace AND stream = :stream AND version <= :high
ORDER BY version DESC
LIMIT :limit;

-- name: ev_read_log
-- The global log after position ``after``, in order.
SELECT position, stream, version, id, type, data, metadata, recorded_at FROM sk_events
WHERE namespace = :namespace AND position > :after
ORDER BY position
LIMIT :limit;

-- name: ev_read_log_back
SELECT position, stream, version, id, type, data, metadata, recorded_at FROM sk_events
WHERE namespace = :namespace AND position < :before
ORDER BY position DESC
LIMIT :limit;

-- name: ev_read_category
-- A category's events (streams named '<category>-...') after position ``after``.
SELECT position, stream, version, id, type, data, metadata, recorded_at FROM sk_events
WHERE namespace = :namespace AND category = :category AND position > :after
ORDER BY position
LIMIT :limit;

-- name: ev_streams
-- A page of stream names that start with a prefix (in [low, high)), after ``after``.
SELECT stream, version, updated_at FROM sk_event_streams
WHERE namespace = :namespace AND stream >= :low AND stream < :high AND stream > :after
ORDER BY stream
LIMIT :limit;

-- name: ev_snapshot_put
-- Keep the newest snapshot of a stream.
INSERT INTO sk_event_snapshots AS s (namespace, stream, version, type, data, recorded_at)
VALUES (:namespace, :stream, :version, :type, :data, :now)
ON CONFLICT (namespace, stream) DO UPDATE
SET version = EXCLUDED.version, type = EXCLUDED.type, data = EXCLUDED.data,
    recorded_at = EXCLUDED.recorded_at
WHERE s.version < EXCLUDED.version;

-- name: ev_snapshot_get
SELECT version, type, data, recorded_at FROM sk_event_snapshots
WHERE namespace = :namespace AND stream = :stream;
