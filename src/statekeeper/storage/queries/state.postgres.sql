-- Statements that differ on PostgreSQL.

-- name: state_get_many
SELECT key, value, etag, expires_at, key_id
FROM sk_state
WHERE namespace = :namespace AND key = ANY(:keys::text[])
  AND (expires_at IS NULL OR expires_at > :now);

-- name: state_list
SELECT key, value, etag, expires_at, key_id
FROM sk_state
WHERE namespace = :namespace AND key > :after::text AND key >= :low::text
  AND (:high_set::int = 0 OR key < :high::text)
  AND (expires_at IS NULL OR expires_at > :now)
ORDER BY key
LIMIT :limit;

-- name: state_purge_expired
-- SKIP LOCKED so purgers in many processes never wait on each other or on writers.
WITH doomed AS (
    SELECT namespace, key FROM sk_state
    WHERE expires_at IS NOT NULL AND expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
DELETE FROM sk_state s USING doomed d
WHERE s.namespace = d.namespace AND s.key = d.key;

-- name: commit_unit
-- A unit of work in one statement (sk_commit, migration 0008).
SELECT cancel_requested, writes FROM sk_commit(
    :namespace, :now,
    :step_id, :fence, :position, :step_kind, :step_name, :step_input::bytea,
    :step_output::bytea, :step_error, :attempts, :started_at, :lease_end,
    :settle, :message_id, :lease_token, :archive, :result::bytea, :error, :retry_at,
    :kinds::text[], :keys::text[], :values::bytea[], :etags::text[], :expires::float8[],
    :key_ids::text[], :if_match::text[], :absent::bool[],
    :m_ids::text[], :m_queues::text[], :m_bodies::bytea[], :m_attributes::text[],
    :m_correlation_ids::text[], :m_groups::text[], :m_available::float8[],
    :m_reply_to::text[]
);
