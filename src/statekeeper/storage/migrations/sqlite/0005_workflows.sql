-- Durable workflows: one row per workflow, its journal of steps, and the events
-- (including callbacks and children's completions) delivered to it.
-- wake_at: when the workflow may run next (NULL: only an event can wake it).
CREATE TABLE sk_workflows (
    namespace        TEXT NOT NULL,
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            BLOB NOT NULL,
    output           BLOB,
    error            TEXT,
    owner            TEXT,
    fence            INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL,
    wake_at          REAL,
    waiting_for      TEXT,
    parent_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    PRIMARY KEY (namespace, id)
);

CREATE INDEX sk_workflows_due ON sk_workflows (namespace, wake_at)
    WHERE status IN ('pending', 'running', 'sleeping', 'waiting');

CREATE INDEX sk_workflows_listing ON sk_workflows (namespace, status, created_at);

CREATE TABLE sk_workflow_steps (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    input       BLOB,
    output      BLOB,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  REAL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, position)
);

CREATE TABLE sk_workflow_events (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    data        BLOB,
    received_at REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, name)
);
