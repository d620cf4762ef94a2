-- Keyed entities on SQLite: a commit and its answers, statements of one writer job
-- (PostgreSQL runs them as one statement: entities.postgres.sql).

-- name: entity_commit
-- The state a batch of calls left, if the entity is still as they found it: the same
-- lease token and version, and (:leased 0, a batch run without the lease) no live lease
-- (no row: nothing applies). The lease kept until :until, or given up (:release).
UPDATE sk_entities
SET state = :state, version = version + :changes, updated_at = :now,
    holder = CASE WHEN :release THEN NULL ELSE holder END,
    lease_until = CASE WHEN :release THEN NULL ELSE :until END
WHERE namespace = :namespace AND type = :type AND key = :key AND lease_token = :token
  AND version = :expected AND (:leased OR holder IS NULL OR lease_until <= :now)
RETURNING version;

-- name: entity_answer
INSERT INTO sk_entity_calls (namespace, type, key, call_id, handler, result, error,
                             version, expires_at)
VALUES (:namespace, :type, :key, :call_id, :handler, :result, :error, :version,
        :expires_at);
