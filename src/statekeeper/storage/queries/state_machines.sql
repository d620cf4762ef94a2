-- Records of the Step Functions API: machines, versions, aliases (machine_ops.py).

-- name: sm_insert
-- A new record; nothing if one of that kind and name exists.
INSERT INTO sk_state_machines (namespace, kind, name, doc, created_at)
VALUES (:namespace, :kind, :name, :doc, :now)
ON CONFLICT (namespace, kind, name) DO NOTHING
RETURNING name;

-- name: sm_update
UPDATE sk_state_machines SET doc = :doc
WHERE namespace = :namespace AND kind = :kind AND name = :name
RETURNING name;

-- name: sm_get
SELECT doc, created_at FROM sk_state_machines
WHERE namespace = :namespace AND kind = :kind AND name = :name;

-- name: sm_list
-- A page of one kind's records whose names lie in [low, high), after the name
-- ``after``, in name order (the primary key's).
SELECT name, doc, created_at FROM sk_state_machines
WHERE namespace = :namespace AND kind = :kind AND name >= :low AND name < :high
  AND name > :after
ORDER BY name
LIMIT :limit;

-- name: sm_list_back
-- The same, newest name first (versions: highest number first), before ``below``.
SELECT name, doc, created_at FROM sk_state_machines
WHERE namespace = :namespace AND kind = :kind AND name >= :low AND name < :high
  AND name < :below
ORDER BY name DESC
LIMIT :limit;

-- name: sm_delete
DELETE FROM sk_state_machines WHERE namespace = :namespace AND kind = :kind AND name = :name
RETURNING name;

-- name: sm_delete_range
DELETE FROM sk_state_machines
WHERE namespace = :namespace AND kind = :kind AND name >= :low AND name < :high;
