-- Keyed entities on SQLite: a commit and its answers, statements of one writer job
-- (PostgreSQL runs them as one statement: entities.postgres.sql).

-- name: entity_commit
-- The state a batch of calls left, if the entity is still as they found it: the same
-- token and version, and (:leased 0, a batch run without the lease) no live lease (no
-- row: nothing applies). Every commit raises the token, even one that changed nothing,
-- so a batch that found the entity as it was before this one cannot commit after it.
-- The lease kept until :until (under the new token), or given up (:release).
UPDATE sk_entities
SET state = :state, version = version + :changes, updated_at = :now,
    lease_token = lease_token + 1,
    holder = CASE WHEN :release THEN NULL ELSE holder END,
    lease_until = CASE WHEN :release THEN NULL ELSE :until END
WHERE namespace = :namespace AND type = :type AND key = :key AND lease_token = :token
  AND version = :expected AND (:leased OR holder IS NULL OR lease_until <= :now)
RETURNING version, lease_token;

-- name: entity_answer
INSERT INTO sk_entity_calls (namespace, type, key, call_id, handler, result, error,
                             version, expires_at)
VALUES (:namespace, :type, :key, :call_id, :handler, :result, :error, :version,
        :expires_at);
