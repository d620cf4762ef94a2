-- Workflows known by name in a namespace, so any process can start them and a worker
-- picks up one defined after it started. kind 'code': registered in a worker's code
-- (announced when it starts; definition NULL); any other kind is a definition an
-- interpreter runs (for example an import path, or a state machine), changed by
-- defining it again, which raises its revision.
CREATE TABLE sk_workflow_definitions (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    definition TEXT,
    revision   INTEGER NOT NULL DEFAULT 1,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);
