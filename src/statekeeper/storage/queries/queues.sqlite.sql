-- Queue statements that differ on SQLite.

-- name: queue_redrive_ids
UPDATE sk_messages
SET state = 'ready', available_at = :now, attempts = 0, dead_at = NULL, lease_token = NULL
WHERE namespace = :namespace AND queue = :queue AND dead_at IS NOT NULL
  AND id IN (SELECT value FROM json_each(:ids_json));
