-- Keyed entities (storage/entity_ops.py): a lease makes one process at a time an
-- entity's writer; its commits are fenced by the lease's token.

-- name: entity_lease
-- The entity's lease, if no one holds it or its holder's lease ran out (a new entity
-- gets its row): the new token, the state and its version. No row: someone holds it.
INSERT INTO sk_entities (namespace, type, key, state, version, holder, lease_token,
                         lease_until, updated_at)
VALUES (:namespace, :type, :key, NULL, 0, :holder, 1, :until, :now)
ON CONFLICT (namespace, type, key) DO UPDATE
SET holder = excluded.holder, lease_token = sk_entities.lease_token + 1,
    lease_until = excluded.lease_until
WHERE sk_entities.holder IS NULL OR sk_entities.lease_until <= :now
RETURNING lease_token, state, version;

-- name: entity_extend
-- The lease held a while longer (a batch still running): no row if it was lost.
UPDATE sk_entities SET lease_until = :until
WHERE namespace = :namespace AND type = :type AND key = :key AND lease_token = :token
  AND holder = :holder
RETURNING key;

-- name: entity_release
-- A lease given back without a commit (its holder is stopping, or ran nothing).
UPDATE sk_entities SET holder = NULL, lease_until = NULL
WHERE namespace = :namespace AND type = :type AND key = :key AND lease_token = :token
RETURNING key;

-- name: entity_get
SELECT state, version, updated_at, holder, lease_until, lease_token
FROM sk_entities
WHERE namespace = :namespace AND type = :type AND key = :key;

-- name: entity_answers
-- The recorded answers among a batch's call ids (:ids, a list).
SELECT call_id, handler, result, error
FROM sk_entity_calls
WHERE namespace = :namespace AND type = :type AND key = :key
  -- postgres: AND call_id = ANY(:ids)
  -- sqlite: AND call_id IN (SELECT value FROM json_each(:ids_json))
;

-- name: entity_list
-- Entities of a type after a key, in key order (the primary key's order).
SELECT key, state, version, updated_at, holder, lease_until, lease_token
FROM sk_entities
WHERE namespace = :namespace AND type = :type AND key > :after
ORDER BY namespace, type, key
LIMIT :limit;

-- name: entity_forget
-- A bounded batch of expired answers at a time, oldest first along their index.
DELETE FROM sk_entity_calls
WHERE (namespace, type, key, call_id) IN (
    SELECT namespace, type, key, call_id FROM sk_entity_calls WHERE expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
);
