-- Cost that stays flat as work grows (docs/decisions/0005-flat-cost.md).

-- The ready order: receive walks this index from its start, in delivery order (due time,
-- then enqueue order), and stops after the messages it takes. Leased messages are in it
-- under their lease end, so an expired lease comes back in order and live ones are out
-- of the range a receive reads. Messages waiting behind their group are not in it.
DROP INDEX sk_messages_due;
CREATE INDEX sk_messages_due ON sk_messages (namespace, queue, available_at, seq)
    WHERE state IN ('ready', 'leased');

-- Messages waiting behind the head of their group, in group order.
DROP INDEX sk_messages_group;
CREATE INDEX sk_messages_waiting ON sk_messages (namespace, queue, group_id, seq)
    WHERE state = 'waiting';

DROP INDEX sk_messages_dead;
CREATE INDEX sk_messages_dead ON sk_messages (namespace, queue, seq) WHERE state = 'dead';

-- Live (not dead-lettered) messages per group: exactly one live message of a group is
-- its head (ready or leased), the others wait.
CREATE TABLE sk_queue_groups (
    namespace TEXT NOT NULL,
    queue     TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    live      INTEGER NOT NULL,
    PRIMARY KEY (namespace, queue, group_id)
) WITHOUT ROWID;

-- A grouped message becomes live (sent, or redriven): it heads its group if the group
-- has no other live message, else it waits.
CREATE TRIGGER sk_messages_group_send AFTER INSERT ON sk_messages
WHEN NEW.group_id IS NOT NULL AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id) > 1;
END;

CREATE TRIGGER sk_messages_group_revive AFTER UPDATE OF state ON sk_messages
WHEN NEW.group_id IS NOT NULL AND OLD.state = 'dead' AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id) > 1;
END;

-- A grouped message leaves (acknowledged, dead-lettered, purged): if it was the head,
-- the group's next waiting message becomes ready.
CREATE TRIGGER sk_messages_group_ack AFTER DELETE ON sk_messages
WHEN OLD.group_id IS NOT NULL AND OLD.state <> 'dead'
BEGIN
    UPDATE sk_queue_groups SET live = live - 1
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id;
    DELETE FROM sk_queue_groups
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id
      AND live <= 0;
    UPDATE sk_messages SET state = 'ready'
    WHERE OLD.state <> 'waiting' AND seq = (
        SELECT seq FROM sk_messages
        WHERE namespace = OLD.namespace AND queue = OLD.queue
          AND group_id = OLD.group_id AND state = 'waiting'
        ORDER BY seq LIMIT 1);
END;

CREATE TRIGGER sk_messages_group_dead AFTER UPDATE OF state ON sk_messages
WHEN OLD.group_id IS NOT NULL AND OLD.state <> 'dead' AND NEW.state = 'dead'
BEGIN
    UPDATE sk_queue_groups SET live = live - 1
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id;
    DELETE FROM sk_queue_groups
    WHERE namespace = OLD.namespace AND queue = OLD.queue AND group_id = OLD.group_id
      AND live <= 0;
    UPDATE sk_messages SET state = 'ready'
    WHERE OLD.state <> 'waiting' AND seq = (
        SELECT seq FROM sk_messages
        WHERE namespace = OLD.namespace AND queue = OLD.queue
          AND group_id = OLD.group_id AND state = 'waiting'
        ORDER BY seq LIMIT 1);
END;

-- Groups that exist already: count their live messages and let only each group's first
-- live message head it.
INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
SELECT namespace, queue, group_id, count(*) FROM sk_messages
WHERE group_id IS NOT NULL AND state <> 'dead'
GROUP BY namespace, queue, group_id;

UPDATE sk_messages SET state = 'waiting'
WHERE group_id IS NOT NULL AND state = 'ready' AND EXISTS (
    SELECT 1 FROM sk_messages o
    WHERE o.namespace = sk_messages.namespace AND o.queue = sk_messages.queue
      AND o.group_id = sk_messages.group_id AND o.state <> 'dead' AND o.seq < sk_messages.seq);

-- The purger's deletes follow an index of their own.
CREATE INDEX sk_queue_dedup_expiry ON sk_queue_dedup (expires_at);
DROP INDEX sk_message_archive_time;
CREATE INDEX sk_message_archive_time ON sk_message_archive (namespace, queue, completed_at, id);
CREATE INDEX sk_message_archive_retention ON sk_message_archive (completed_at);

-- Workflows due to run, by time. Keyed on wake_at alone (NULL once finished, or while
-- only an event can wake it), not on the status: a point statement on one workflow
-- (status = 'running', say) then never matches this partial index's predicate, so the
-- planner cannot prefer it to the primary key while its statistics say "empty".
DROP INDEX sk_workflows_due;
UPDATE sk_workflows SET wake_at = NULL
WHERE status NOT IN ('pending', 'running', 'sleeping', 'waiting') AND wake_at IS NOT NULL;
CREATE INDEX sk_workflows_due ON sk_workflows (namespace, wake_at) WHERE wake_at IS NOT NULL;

-- Workflow listings, each filter with the index of its order. The filters' indexes are
-- on expressions (status || '', name || '') that only the listings write: a statement on
-- one workflow (status = 'running') or the lease (name = ANY(...)) can never pick them,
-- whatever the statistics say (docs/decisions/0005-flat-cost.md).
DROP INDEX sk_workflows_listing;
CREATE INDEX sk_workflows_listing ON sk_workflows (namespace, created_at, id);
CREATE INDEX sk_workflows_by_status ON sk_workflows (namespace, (status || ''), created_at, id);
CREATE INDEX sk_workflows_by_name ON sk_workflows (namespace, (name || ''), created_at, id);
