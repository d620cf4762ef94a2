-- A message queue's concurrency across every worker (flow control for consumers): at
-- most sk_queue_limits.concurrency messages of the queue leased at a time (NULL: no
-- limit). A receive leases no more than the limit leaves (queue_receive); SQLite's one
-- writer runs receives one at a time, so the count it reads is the truth.

ALTER TABLE sk_queue_limits ADD COLUMN concurrency INTEGER;

-- The leased messages of a queue under a live lease, counted by a capped receive.
CREATE INDEX sk_messages_leased ON sk_messages (namespace, queue, available_at)
    WHERE state = 'leased';
