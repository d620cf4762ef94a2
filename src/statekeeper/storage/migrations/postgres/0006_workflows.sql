-- Durable workflows: one row per workflow, its journal of steps, and the events
-- (including callbacks and children's completions) delivered to it.
-- wake_at: when the workflow may run next (NULL: only an event can wake it).
CREATE TABLE sk_workflows (
    namespace        TEXT NOT NULL,
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            BYTEA NOT NULL,
    output           BYTEA,
    error            TEXT,
    owner            TEXT,
    fence            BIGINT NOT NULL DEFAULT 0,
    lease_expires_at DOUBLE PRECISION,
    wake_at          DOUBLE PRECISION,
    waiting_for      TEXT,
    parent_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
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
    input       BYTEA,
    output      BYTEA,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  DOUBLE PRECISION,
    finished_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, position)
);

CREATE TABLE sk_workflow_events (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    data        BYTEA,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, name)
);
