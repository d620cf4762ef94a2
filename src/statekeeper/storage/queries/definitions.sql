-- Workflow definitions: workflows known by name in a namespace (definition_ops.py).

-- name: def_define
-- Defines (or redefines: a new revision when the kind or definition changed) a workflow.
INSERT INTO sk_workflow_definitions (namespace, name, kind, definition, revision, updated_at)
VALUES (:namespace, :name, :kind, :definition, 1, :now)
ON CONFLICT (namespace, name) DO UPDATE
SET kind = excluded.kind, definition = excluded.definition, updated_at = excluded.updated_at,
    revision = sk_workflow_definitions.revision + 1
WHERE sk_workflow_definitions.kind <> excluded.kind
   OR COALESCE(sk_workflow_definitions.definition, '') <> COALESCE(excluded.definition, '')
RETURNING revision;

-- name: def_announce_code
-- A worker's registered workflow: known by name from now on (a definition of another
-- kind under that name is left as it is).
INSERT INTO sk_workflow_definitions (namespace, name, kind, definition, revision, updated_at)
VALUES (:namespace, :name, 'code', NULL, 1, :now)
ON CONFLICT (namespace, name) DO NOTHING;

-- name: def_list
SELECT name, kind, definition, revision, updated_at FROM sk_workflow_definitions
WHERE namespace = :namespace
ORDER BY name;

-- name: def_get
SELECT name, kind, definition, revision, updated_at FROM sk_workflow_definitions
WHERE namespace = :namespace AND name = :name;

-- name: def_delete
DELETE FROM sk_workflow_definitions WHERE namespace = :namespace AND name = :name
RETURNING name;
