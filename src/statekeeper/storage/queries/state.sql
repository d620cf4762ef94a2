-- Statements shared by SQLite and PostgreSQL. Times are Unix seconds from the
-- app's clock. An item whose expires_at has passed is invisible: every read and
-- every condition treats it as absent.

-- name: state_get
SELECT value, etag, expires_at, key_id
FROM sk_state
WHERE namespace = :namespace AND key = :key
  AND (expires_at IS NULL OR expires_at > :now);

-- name: state_put
INSERT INTO sk_state (namespace, key, value, etag, expires_at, key_id)
VALUES (:namespace, :key, :value, :etag, :expires_at, :key_id)
ON CONFLICT (namespace, key) DO UPDATE
SET value = excluded.value, etag = excluded.etag,
    expires_at = excluded.expires_at, key_id = excluded.key_id;

-- name: state_put_if_absent
-- Inserts, or overwrites a row that has expired; no row back means the key exists.
INSERT INTO sk_state (namespace, key, value, etag, expires_at, key_id)
VALUES (:namespace, :key, :value, :etag, :expires_at, :key_id)
ON CONFLICT (namespace, key) DO UPDATE
SET value = excluded.value, etag = excluded.etag,
    expires_at = excluded.expires_at, key_id = excluded.key_id
WHERE sk_state.expires_at IS NOT NULL AND sk_state.expires_at <= :now
RETURNING etag;

-- name: state_put_if_match
UPDATE sk_state
SET value = :value, etag = :etag, expires_at = :expires_at, key_id = :key_id
WHERE namespace = :namespace AND key = :key AND etag = :if_match
  AND (expires_at IS NULL OR expires_at > :now)
RETURNING etag;

-- name: state_delete
-- Removes the row whatever its expiry; the caller learns whether it was visible.
DELETE FROM sk_state
WHERE namespace = :namespace AND key = :key
RETURNING expires_at;

-- name: state_delete_if_match
DELETE FROM sk_state
WHERE namespace = :namespace AND key = :key AND etag = :if_match
  AND (expires_at IS NULL OR expires_at > :now)
RETURNING etag;

-- name: state_list
SELECT key, value, etag, expires_at, key_id
FROM sk_state
WHERE namespace = :namespace AND key > :after AND key >= :low
  AND (:high_set = 0 OR key < :high)
  AND (expires_at IS NULL OR expires_at > :now)
ORDER BY key
LIMIT :limit;

-- name: state_reseal
-- Rewrites a value under another encryption key; the ETag stays, for the value did not change.
UPDATE sk_state
SET value = :value, key_id = :key_id
WHERE namespace = :namespace AND key = :key AND etag = :etag
RETURNING etag;

-- name: state_count_sealed
SELECT count(*) FROM sk_state WHERE namespace = :namespace AND key_id IS NOT NULL;
