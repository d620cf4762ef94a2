-- Idempotency records: the first call with a key runs, later calls get its result.
-- A record is 'running' (owned, with a lease the owner renews) or 'done' (result kept
-- until expires_at). A running record whose lease ran out may be taken over.

-- name: idempotency_claim
INSERT INTO sk_idempotency (namespace, key, fingerprint, state, owner, lease_expires_at,
                            result, expires_at)
VALUES (:namespace, :key, :fingerprint, 'running', :owner, :lease_expires_at, NULL,
        :expires_at)
ON CONFLICT (namespace, key) DO UPDATE
SET fingerprint = excluded.fingerprint, state = 'running', owner = excluded.owner,
    lease_expires_at = excluded.lease_expires_at, result = NULL,
    expires_at = excluded.expires_at
WHERE sk_idempotency.expires_at <= :now
   OR (sk_idempotency.state = 'running' AND sk_idempotency.lease_expires_at <= :now
       AND sk_idempotency.fingerprint = excluded.fingerprint)
RETURNING owner;

-- name: idempotency_get
SELECT fingerprint, state, owner, lease_expires_at, result, expires_at
FROM sk_idempotency
WHERE namespace = :namespace AND key = :key AND expires_at > :now;

-- name: idempotency_complete
UPDATE sk_idempotency
SET state = 'done', result = :result, expires_at = :expires_at, owner = NULL,
    lease_expires_at = NULL
WHERE namespace = :namespace AND key = :key AND owner = :owner AND state = 'running'
RETURNING key;

-- name: idempotency_extend
UPDATE sk_idempotency SET lease_expires_at = :lease_expires_at
WHERE namespace = :namespace AND key = :key AND owner = :owner AND state = 'running'
RETURNING key;

-- name: idempotency_abandon
DELETE FROM sk_idempotency
WHERE namespace = :namespace AND key = :key AND owner = :owner AND state = 'running'
RETURNING key;

-- name: idempotency_forget
-- A bounded batch at a time, so one purge never holds a long transaction; oldest first,
-- in the order of the index it reads (so no plan prefers reading the whole table).
DELETE FROM sk_idempotency
WHERE (namespace, key) IN (
    SELECT namespace, key FROM sk_idempotency WHERE expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
);
