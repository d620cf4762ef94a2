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

-- name: state_apply
SELECT sk_state_apply(
    :namespace, :now, :kinds::text[], :keys::text[], :values::bytea[], :etags::text[],
    :expires::float8[], :key_ids::text[], :if_match::text[], :absent::bool[]
);

-- name: state_apply_outbox
-- A state transaction and the messages it sends (the transactional outbox), in one
-- statement: if sk_state_apply raises, nothing is enqueued.
WITH applied AS (
    SELECT sk_state_apply(
        :namespace, :now, :kinds::text[], :keys::text[], :values::bytea[], :etags::text[],
        :expires::float8[], :key_ids::text[], :if_match::text[], :absent::bool[]
    ) AS results
), sent AS (
    INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                             state, available_at, attempts, enqueued_at)
    SELECT m.id, :namespace, m.queue, m.body, m.attributes, m.correlation_id, m.group_id,
           'ready', m.available_at, 0, :now
    FROM unnest(:m_ids::text[], :m_queues::text[], :m_bodies::bytea[], :m_attributes::text[],
                :m_correlation_ids::text[], :m_groups::text[], :m_available::float8[])
         WITH ORDINALITY
         AS m(id, queue, body, attributes, correlation_id, group_id, available_at, ord)
    WHERE (SELECT results FROM applied) IS NOT NULL
    -- Grouped messages lock their groups' rows (a trigger) in group order, so that two
    -- transactions sending to the same groups never deadlock; each group keeps its order.
    ORDER BY m.group_id NULLS FIRST, m.ord
    RETURNING 1
)
SELECT (SELECT results FROM applied), (SELECT count(*) FROM sent);
