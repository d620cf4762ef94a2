-- Workflow search (issue 12, search): the searchable attributes a workflow sets
-- (ctx.set_attributes), one row per workflow and attribute. An attribute name has one
-- kind per namespace, fixed by its first use (sk_workflow_attribute_kinds): keyword
-- values are in text_value; int, float, bool (0/1) and timestamp (Unix seconds) values
-- in number_value. created_at is the workflow's own (it never changes), so that a filter
-- on one attribute reads its index range in the listing's order (newest first) and a
-- page stops when it is full (each index holds the rows of its kind only: a statement on
-- one workflow's attributes finds no use for them). A purge deletes a workflow's attributes with it.
CREATE TABLE sk_workflow_attributes (
    namespace    TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    text_value   TEXT,
    number_value DOUBLE PRECISION,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_id, name)
);

CREATE INDEX sk_workflow_attributes_text
    ON sk_workflow_attributes (namespace, name, text_value, created_at, workflow_id)
    WHERE text_value IS NOT NULL;

CREATE INDEX sk_workflow_attributes_number
    ON sk_workflow_attributes (namespace, name, number_value, created_at, workflow_id)
    WHERE number_value IS NOT NULL;

CREATE TABLE sk_workflow_attribute_kinds (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name)
);
