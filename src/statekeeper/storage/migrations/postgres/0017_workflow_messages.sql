-- Messages to running workflows (issue 12, item 4: workflows/mailbox.py, updates.py,
-- values.py). A workflow's mailbox, numbered per topic; the updates asked of it and
-- their outcomes; the values it published, the last one under each key.
CREATE TABLE sk_workflow_messages (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    topic       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    data        BYTEA,
    sent_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, topic, seq)
);

CREATE TABLE sk_workflow_updates (
    namespace    TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    data         BYTEA,
    status       TEXT NOT NULL,
    result       BYTEA,
    error        TEXT,
    requested_at DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    PRIMARY KEY (namespace, workflow_id, seq)
);

CREATE INDEX sk_workflow_updates_pending ON sk_workflow_updates (namespace, workflow_id, seq)
    WHERE status = 'pending';

CREATE TABLE sk_workflow_values (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BYTEA,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, key)
);
