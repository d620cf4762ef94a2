-- The persistence module of the eventsourcing library (statekeeper/eventsourcing/): an
-- originator's events (a stream), the application sequence (the namespace's global
-- log) and tracking positions (sk_subscriptions rows without a lease). Appends and
-- tracking positions are the unit of work's (unit.py).

-- name: es_stream
-- An originator's events with versions in (gt, lte], oldest first.
SELECT version, type, data FROM sk_events
WHERE namespace = :namespace AND stream = :stream AND version > :gt AND version <= :lte
ORDER BY version
LIMIT :limit;

-- name: es_stream_back
-- The same, newest first.
SELECT version, type, data FROM sk_events
WHERE namespace = :namespace AND stream = :stream AND version > :gt AND version <= :lte
ORDER BY version DESC
LIMIT :limit;

-- name: es_notifications
-- The log's events at positions in (after, stop], in order.
SELECT position, stream, version, type, data FROM sk_events
WHERE namespace = :namespace AND position > :after AND position <= :stop
ORDER BY position
LIMIT :limit;

-- name: es_notifications_of
-- The same, of some types (the library's topics) only.
SELECT position, stream, version, type, data FROM sk_events
WHERE namespace = :namespace AND position > :after AND position <= :stop
-- postgres:  AND type = ANY(:types::text[])
-- sqlite:  AND type IN (SELECT value FROM json_each(:types_json))
ORDER BY position
LIMIT :limit;
