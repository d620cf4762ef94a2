-- What the Step Functions API knows of a namespace's state machines besides their
-- current definition (a workflow definition of kind 'asl'): a machine's own record
-- (kind 'machine': role, type, description, tags, dates), its published versions
-- (kind 'version', named '<machine>:<number padded to 10 digits>', each with its
-- definition) and its aliases (kind 'alias', named '<machine>:<alias>'). Each is a
-- JSON document; listings read one kind in name order from the primary key.
CREATE TABLE sk_state_machines (
    namespace  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (namespace, kind, name)
);
