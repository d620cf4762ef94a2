-- Durable streams of workflows (ctx.write_stream): the values written under a key, in
-- order (seq 0, 1, ...), each committed with the journal entry that wrote it: the run
-- (how many times the workflow had continued as new) and the journal position, which
-- its value (JSON, sealed when encryption is on) is bound to and by which a rewind
-- forgets what it wrote from there. A row without a value closes the stream
-- (ctx.close_stream): readers end there.
CREATE TABLE sk_workflow_streams (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    value       BLOB,
    run         INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    written_at  REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_id, key, seq)
) WITHOUT ROWID;
