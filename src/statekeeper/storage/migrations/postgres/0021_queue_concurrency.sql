-- A message queue's concurrency across every worker (flow control for consumers): at
-- most sk_queue_limits.concurrency messages of the queue leased at a time (NULL: no
-- limit). See schema/postgres.sql.

ALTER TABLE sk_queue_limits ADD COLUMN concurrency INTEGER;

-- The leased messages of a queue under a live lease, counted by a capped receive.
CREATE INDEX sk_messages_leased ON sk_messages (namespace, queue, available_at)
    WHERE state = 'leased';

-- How many messages a receive of queue p_queue may lease (at most p_limit): p_limit if
-- the queue has no concurrency limit; else what the limit leaves, counted under the
-- queue's transaction-scoped advisory lock, so that concurrent receives in any number
-- of processes take turns (a volatile function's statement reads a snapshot taken after
-- the lock: every lease committed before it is counted). queue_receive calls it as its
-- LIMIT, once, before it reads the queue; the lock is held until the receive commits.
CREATE FUNCTION sk_queue_cap(
    p_namespace TEXT, p_queue TEXT, p_limit INTEGER, p_now DOUBLE PRECISION
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_cap INTEGER;
    v_leased INTEGER;
BEGIN
    SELECT concurrency INTO v_cap FROM sk_queue_limits
    WHERE namespace = p_namespace AND queue = p_queue;
    IF v_cap IS NULL THEN
        RETURN p_limit;
    END IF;
    -- 'SKQC': statekeeper queue concurrency
    PERFORM pg_advisory_xact_lock(1397445955, hashtext(p_namespace || chr(31) || p_queue));
    SELECT count(*) INTO v_leased FROM sk_messages
    WHERE namespace = p_namespace AND queue = p_queue AND state = 'leased'
      AND available_at > p_now;
    RETURN greatest(0, least(p_limit, v_cap - v_leased));
END;
$$;
