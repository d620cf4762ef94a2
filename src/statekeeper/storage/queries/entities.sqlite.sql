-- Keyed entities on SQLite: a commit and its answers, statements of one writer job
-- (PostgreSQL runs them as one statement: entities.postgres.sql).

-- name: entity_commit
-- The state a batch of calls left, under the lease that ran them (no row: the lease was
-- taken over, nothing applies); the lease kept until :until, or given up (:release).
UPDATE sk_entities
SET state = :state, version = version + :changes, updated_at = :now,
    holder = CASE WHEN :release THEN NULL ELSE holder END,
    lease_until = CASE WHEN :release THEN NULL ELSE :until END
WHERE namespace = :namespace AND type = :type AND key = :key AND lease_token = :token
RETURNING version;

-- name: entity_answer
INSERT INTO sk_entity_calls (namespace, type, key, call_id, handler, result, error,
                             version, expires_at)
VALUES (:namespace, :type, :key, :call_id, :handler, :result, :error, :version,
        :expires_at);
