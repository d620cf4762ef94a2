-- Schedules (issue 12, item 2). A schedule starts runs of a workflow at the fire times of
-- its spec (cron, interval or one-off). next_fire_at is its next nominal fire time (the
-- run id's idempotency key); due_at is when a scheduler should look at it next (the next
-- fire plus its jitter, sooner while a buffered fire waits for the previous run, or a
-- claim's lease end): NULL when paused or when nothing is left to fire. Every change of
-- the row adds one to version, and each write says which version it read (a fence).
CREATE TABLE sk_schedules (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    input        BLOB NOT NULL,
    spec         TEXT NOT NULL,
    overlap      TEXT NOT NULL,
    jitter       REAL NOT NULL,
    catchup      REAL NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    next_fire_at REAL,
    due_at       REAL,
    last_run_id  TEXT,
    buffered     TEXT NOT NULL DEFAULT '[]',
    version      INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (namespace, id)
);

CREATE INDEX sk_schedules_due ON sk_schedules (namespace, due_at) WHERE due_at IS NOT NULL;
