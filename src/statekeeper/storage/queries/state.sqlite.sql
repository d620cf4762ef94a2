-- Statements that differ on SQLite.

-- name: state_get_many
SELECT key, value, etag, expires_at, key_id
FROM sk_state
WHERE namespace = :namespace AND key IN (SELECT value FROM json_each(:keys_json))
  AND (expires_at IS NULL OR expires_at > :now);

-- name: state_purge_expired
DELETE FROM sk_state
WHERE (namespace, key) IN (
    SELECT namespace, key FROM sk_state
    WHERE expires_at IS NOT NULL AND expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
);
