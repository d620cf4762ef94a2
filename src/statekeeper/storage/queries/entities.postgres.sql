-- Keyed entities on PostgreSQL: a commit and its answers in one statement.

-- name: entity_commit_answers
-- entity_commit (entities.sqlite.sql: its conditions) and every answer of the batch
-- (arrays, one item per call with an id),
-- each answer stamped with the entity's version after the commit: the version and the
-- new token. No row: the entity moved on and nothing applied.
WITH committed AS (
    UPDATE sk_entities
    SET state = :state, version = version + :changes::bigint, updated_at = :now,
        lease_token = lease_token + 1,
        holder = CASE WHEN :release::boolean THEN NULL ELSE holder END,
        lease_until = CASE WHEN :release::boolean THEN NULL ELSE :until::double precision END
    WHERE namespace = :namespace AND type = :type AND key = :key AND lease_token = :token
      AND version = :expected
      AND (:leased::boolean OR holder IS NULL OR lease_until <= :now)
    RETURNING version, lease_token
), answered AS (
    INSERT INTO sk_entity_calls (namespace, type, key, call_id, handler, result, error,
                                 version, expires_at)
    SELECT :namespace, :type, :key, a.call_id, a.handler, a.result, a.error, c.version,
           :expires_at
    FROM committed c,
         unnest(:call_ids::text[], :handlers::text[], :results::bytea[], :errors::text[])
             AS a(call_id, handler, result, error)
    RETURNING 1
)
SELECT version, lease_token FROM committed;
