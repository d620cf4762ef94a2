-- Flow control: named workflow queues (issue 12, part 3). See schema/sqlite.sql.

-- Flow control (issue 12, part 3): named workflow queues, and the runs started into them.
-- A queue's limits as the code declares them (upserted when a process starts a run into
-- it or runs it): NULL is no limit. A queued workflow is 'pending' with no wake_at (so it
-- is not due) until admission marks its sk_flow_runs row 'admitted' and sets its wake_at;
-- it keeps its slot until it ends ('done'). admitted_at stays: the rate limits count the
-- admissions of the last period through it. lock is 'd:<key>' while a debounced run waits
-- (starts with that key update it) and 's:<key>' while a singleton runs: one of each per
-- queue and key, across every worker (sk_flow_runs_lock).
CREATE TABLE sk_flow_queues (
    namespace           TEXT NOT NULL,
    name                TEXT NOT NULL,
    concurrency         INTEGER,
    per_key_concurrency INTEGER,
    rate_limit          INTEGER,
    rate_period         REAL,
    key_rate_limit      INTEGER,
    key_rate_period     REAL,
    updated_at          REAL NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

CREATE TABLE sk_flow_runs (
    seq         INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    id          TEXT NOT NULL,
    queue       TEXT NOT NULL,
    key         TEXT,
    priority    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    not_before  REAL NOT NULL,
    admitted_at REAL,
    lock        TEXT,
    created_at  REAL NOT NULL,
    UNIQUE (namespace, id)
);

-- Admission walks the waiting runs of a queue, highest priority first, then oldest.
CREATE INDEX sk_flow_runs_waiting ON sk_flow_runs (namespace, queue, priority DESC, seq)
    WHERE state = 'waiting';

-- The runs holding a slot, counted per queue and per key (never more than the limit).
CREATE INDEX sk_flow_runs_admitted ON sk_flow_runs (namespace, queue, key)
    WHERE state = 'admitted';

-- Admissions of the last rate period, per queue and per key.
CREATE INDEX sk_flow_runs_rate ON sk_flow_runs (namespace, queue, admitted_at)
    WHERE admitted_at IS NOT NULL;

CREATE INDEX sk_flow_runs_key_rate ON sk_flow_runs (namespace, queue, key, admitted_at)
    WHERE admitted_at IS NOT NULL AND key IS NOT NULL;

CREATE UNIQUE INDEX sk_flow_runs_lock ON sk_flow_runs (namespace, queue, lock)
    WHERE lock IS NOT NULL;

-- An admitted run is due at once (its workflow row waited with no wake_at, or with its
-- deadline's: a queued run times out while it waits).
CREATE TRIGGER sk_flow_runs_admit AFTER UPDATE OF state ON sk_flow_runs
WHEN NEW.state = 'admitted' AND OLD.state = 'waiting'
BEGIN
    UPDATE sk_workflows SET wake_at = NEW.admitted_at, updated_at = NEW.admitted_at
    WHERE namespace = NEW.namespace AND id = NEW.id AND status = 'pending'
      AND (wake_at IS NULL OR wake_at > NEW.admitted_at);
END;

-- Consumers' per-group concurrency (flow control): at most per_group messages of one
-- group of a queue are live heads (ready or leased) at a time, the rest wait; a queue
-- without a row here keeps FIFO groups (1). The send and revive triggers read it; a
-- head's leave promotes the next waiting message as before, which keeps the heads at
-- min(live, per_group).
CREATE TABLE sk_queue_limits (
    namespace TEXT NOT NULL,
    queue     TEXT NOT NULL,
    per_group INTEGER NOT NULL,
    PRIMARY KEY (namespace, queue)
) WITHOUT ROWID;

DROP TRIGGER sk_messages_group_send;

CREATE TRIGGER sk_messages_group_send AFTER INSERT ON sk_messages
WHEN NEW.group_id IS NOT NULL AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id)
      > coalesce((SELECT per_group FROM sk_queue_limits
                  WHERE namespace = NEW.namespace AND queue = NEW.queue), 1);
END;

DROP TRIGGER sk_messages_group_revive;

CREATE TRIGGER sk_messages_group_revive AFTER UPDATE OF state ON sk_messages
WHEN NEW.group_id IS NOT NULL AND OLD.state = 'dead' AND NEW.state <> 'dead'
BEGIN
    INSERT INTO sk_queue_groups (namespace, queue, group_id, live)
    VALUES (NEW.namespace, NEW.queue, NEW.group_id, 1)
    ON CONFLICT (namespace, queue, group_id) DO UPDATE SET live = live + 1;
    UPDATE sk_messages SET state = 'waiting'
    WHERE seq = NEW.seq AND (
        SELECT live FROM sk_queue_groups
        WHERE namespace = NEW.namespace AND queue = NEW.queue AND group_id = NEW.group_id)
      > coalesce((SELECT per_group FROM sk_queue_limits
                  WHERE namespace = NEW.namespace AND queue = NEW.queue), 1);
END;
