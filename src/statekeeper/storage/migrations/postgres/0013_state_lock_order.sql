-- State transactions lock their keys in one global order before writing, so that
-- two transactions over the same keys in different orders never deadlock.
CREATE OR REPLACE FUNCTION sk_state_apply(
    p_namespace TEXT,
    p_now       DOUBLE PRECISION,
    p_kinds     TEXT[],
    p_keys      TEXT[],
    p_values    BYTEA[],
    p_etags     TEXT[],
    p_expires   DOUBLE PRECISION[],
    p_key_ids   TEXT[],
    p_if_match  TEXT[],
    p_absent    BOOLEAN[]
) RETURNS BOOLEAN[] LANGUAGE plpgsql AS $$
DECLARE
    results BOOLEAN[] := '{}';
    old_expiry DOUBLE PRECISION;
BEGIN
    -- Several keys: take a lock per key first, in one global order (by the hash that
    -- names it), so transactions writing the same keys in different orders wait for
    -- one another instead of deadlocking. The locks end with the transaction.
    IF coalesce(array_length(p_keys, 1), 0) > 1 THEN
        PERFORM pg_advisory_xact_lock(1397445460, h)  -- 'SKST': statekeeper state keys
        FROM (SELECT DISTINCT hashtext(p_namespace || chr(31) || k) AS h
              FROM unnest(p_keys) AS k ORDER BY 1) AS ordered;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
        IF p_kinds[i] = 'put' THEN
            IF p_if_match[i] IS NOT NULL THEN
                UPDATE sk_state
                SET value = p_values[i], etag = p_etags[i],
                    expires_at = p_expires[i], key_id = p_key_ids[i]
                WHERE namespace = p_namespace AND key = p_keys[i] AND etag = p_if_match[i]
                  AND (expires_at IS NULL OR expires_at > p_now);
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'SK409', MESSAGE = 'etag mismatch',
                        DETAIL = (i - 1)::TEXT;
                END IF;
            ELSIF p_absent[i] THEN
                INSERT INTO sk_state (namespace, key, value, etag, expires_at, key_id)
                VALUES (p_namespace, p_keys[i], p_values[i], p_etags[i], p_expires[i], p_key_ids[i])
                ON CONFLICT (namespace, key) DO UPDATE
                SET value = excluded.value, etag = excluded.etag,
                    expires_at = excluded.expires_at, key_id = excluded.key_id
                WHERE sk_state.expires_at IS NOT NULL AND sk_state.expires_at <= p_now;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'SK412', MESSAGE = 'key exists',
                        DETAIL = (i - 1)::TEXT;
                END IF;
            ELSE
                INSERT INTO sk_state (namespace, key, value, etag, expires_at, key_id)
                VALUES (p_namespace, p_keys[i], p_values[i], p_etags[i], p_expires[i], p_key_ids[i])
                ON CONFLICT (namespace, key) DO UPDATE
                SET value = excluded.value, etag = excluded.etag,
                    expires_at = excluded.expires_at, key_id = excluded.key_id;
            END IF;
            results := results || TRUE;
        ELSIF p_if_match[i] IS NOT NULL THEN
            DELETE FROM sk_state
            WHERE namespace = p_namespace AND key = p_keys[i] AND etag = p_if_match[i]
              AND (expires_at IS NULL OR expires_at > p_now);
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'SK409', MESSAGE = 'etag mismatch',
                    DETAIL = (i - 1)::TEXT;
            END IF;
            results := results || TRUE;
        ELSE
            DELETE FROM sk_state WHERE namespace = p_namespace AND key = p_keys[i]
            RETURNING expires_at INTO old_expiry;
            results := results || (FOUND AND (old_expiry IS NULL OR old_expiry > p_now));
        END IF;
    END LOOP;
    RETURN results;
END;
$$;
