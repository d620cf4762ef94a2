-- Workflow search: the attributes a workflow sets (ctx.set_attributes), listings
-- filtered on them, and counts. An attribute's kind is fixed per namespace by its first
-- use (sk_workflow_attribute_kinds); keyword values are in text_value, numbers (int,
-- float, bool as 0/1, timestamp as Unix seconds) in number_value.
--
-- A filtered listing is driven by ONE attribute filter (an equality if there is one):
-- the range of sk_workflow_attributes_text or _number it reads, in the listing's order
-- (created_at, workflow_id descending, from the cursor) when it is an equality, so that
-- a page stops once it is full. The other filters are checked per row found: status and
-- name on the workflow's row (its primary key), the other attributes each through
-- sk_workflow_attributes' primary key, given as JSON [{name, text, low, high}]
-- (:filters_json; text for a keyword, else the number range, a null bound is open).
-- On PostgreSQL the workflow's row is read per attribute row found (a LATERAL subquery
-- with LIMIT 1, which the planner does not turn into a join that could read all of
-- sk_workflows on tables it has no statistics of).

-- name: wf_attr_kind_add
-- An attribute name's kind, fixed by its first use (a later use of another kind is
-- refused by wf_attr_set, which finds no row).
INSERT INTO sk_workflow_attribute_kinds (namespace, name, kind, created_at)
VALUES (:namespace, :attr, :kind, :now)
ON CONFLICT (namespace, name) DO NOTHING;

-- name: wf_attr_set
-- One attribute of a workflow, set when its kind is the name's; no row back when it is
-- not (the caller's transaction is rolled back) or the workflow does not exist.
INSERT INTO sk_workflow_attributes AS a (namespace, workflow_id, name, kind, text_value,
                                         number_value, created_at, updated_at)
SELECT :namespace, :id, :attr, :kind, :text_value, :number_value, w.created_at, :now
FROM sk_workflows w
WHERE w.namespace = :namespace AND w.id = :id
  AND EXISTS (SELECT 1 FROM sk_workflow_attribute_kinds k
              WHERE k.namespace = :namespace AND k.name = :attr AND k.kind = :kind)
ON CONFLICT (namespace, workflow_id, name) DO UPDATE
SET kind = excluded.kind, text_value = excluded.text_value,
    number_value = excluded.number_value, updated_at = excluded.updated_at
RETURNING name;

-- name: wf_attr_unset
DELETE FROM sk_workflow_attributes
WHERE namespace = :namespace AND workflow_id = :id AND name = :attr;

-- name: wf_attr_kinds
-- The kinds of the names asked about (the primary key, one lookup each).
SELECT name, kind FROM sk_workflow_attribute_kinds
WHERE namespace = :namespace
  -- sqlite: AND name IN (SELECT value FROM json_each(:names_json))
  -- postgres: AND name = ANY(:names::text[])
ORDER BY name;

-- name: wf_attr_of
SELECT name, kind, text_value, number_value FROM sk_workflow_attributes
WHERE namespace = :namespace AND workflow_id = :id
ORDER BY name;

-- name: wf_attr_purge
-- A purged workflow's attributes (in the purge's transaction).
DELETE FROM sk_workflow_attributes WHERE namespace = :namespace AND workflow_id = :id;

-- name: wf_search_text
SELECT w.id, w.name, w.status, w.created_at, w.updated_at, w.version
FROM sk_workflow_attributes a
-- sqlite: JOIN sk_workflows w ON w.namespace = a.namespace AND w.id = a.workflow_id
-- postgres: CROSS JOIN LATERAL (SELECT id, name, status, created_at, updated_at, version
-- postgres:     FROM sk_workflows WHERE namespace = a.namespace AND id = a.workflow_id
-- postgres:     LIMIT 1) w
WHERE a.namespace = :namespace AND a.name = :attr AND a.text_value = :attr_text
  AND (a.created_at, a.workflow_id) < (:before_time, :before_id)
  AND a.created_at >= :after_time
  AND (CAST(:status AS TEXT) IS NULL OR w.status = :status)
  AND (CAST(:name AS TEXT) IS NULL OR w.name = :name)
  AND NOT EXISTS (
      -- sqlite: SELECT 1 FROM (SELECT json_extract(value, '$.name') AS name,
      -- sqlite:     json_extract(value, '$.text') AS text, json_extract(value, '$.low') AS low,
      -- sqlite:     json_extract(value, '$.high') AS high FROM json_each(:filters_json)) f
      -- postgres: SELECT 1 FROM jsonb_to_recordset(CAST(:filters_json AS jsonb))
      -- postgres:     AS f(name text, text text, low float8, high float8)
      WHERE NOT EXISTS (
          SELECT 1 FROM sk_workflow_attributes b
          WHERE b.namespace = :namespace AND b.workflow_id = a.workflow_id
            AND b.name = f.name
            AND (b.text_value = f.text OR (f.text IS NULL AND b.number_value IS NOT NULL
                 AND (f.low IS NULL OR b.number_value >= f.low)
                 AND (f.high IS NULL OR b.number_value <= f.high)))))
ORDER BY a.created_at DESC, a.workflow_id DESC
LIMIT :limit;

-- name: wf_search_number
-- An equality (low = high) reads its range in the listing's order; a range reads every
-- row in it, sorted (its cost is the rows in the range, whatever else the table holds).
SELECT w.id, w.name, w.status, w.created_at, w.updated_at, w.version
FROM sk_workflow_attributes a
-- sqlite: JOIN sk_workflows w ON w.namespace = a.namespace AND w.id = a.workflow_id
-- postgres: CROSS JOIN LATERAL (SELECT id, name, status, created_at, updated_at, version
-- postgres:     FROM sk_workflows WHERE namespace = a.namespace AND id = a.workflow_id
-- postgres:     LIMIT 1) w
WHERE a.namespace = :namespace AND a.name = :attr
  AND a.number_value >= :number_low AND a.number_value <= :number_high
  AND (a.created_at, a.workflow_id) < (:before_time, :before_id)
  AND a.created_at >= :after_time
  AND (CAST(:status AS TEXT) IS NULL OR w.status = :status)
  AND (CAST(:name AS TEXT) IS NULL OR w.name = :name)
  AND NOT EXISTS (
      -- sqlite: SELECT 1 FROM (SELECT json_extract(value, '$.name') AS name,
      -- sqlite:     json_extract(value, '$.text') AS text, json_extract(value, '$.low') AS low,
      -- sqlite:     json_extract(value, '$.high') AS high FROM json_each(:filters_json)) f
      -- postgres: SELECT 1 FROM jsonb_to_recordset(CAST(:filters_json AS jsonb))
      -- postgres:     AS f(name text, text text, low float8, high float8)
      WHERE NOT EXISTS (
          SELECT 1 FROM sk_workflow_attributes b
          WHERE b.namespace = :namespace AND b.workflow_id = a.workflow_id
            AND b.name = f.name
            AND (b.text_value = f.text OR (f.text IS NULL AND b.number_value IS NOT NULL
                 AND (f.low IS NULL OR b.number_value >= f.low)
                 AND (f.high IS NULL OR b.number_value <= f.high)))))
ORDER BY a.created_at DESC, a.workflow_id DESC
LIMIT :limit;

-- name: wf_count
-- Counts by status and name of the workflows created in [after_time, before_time): the
-- range of sk_workflows_listing (a count reads the rows it counts).
SELECT status, name, count(*) FROM sk_workflows
WHERE namespace = :namespace AND created_at >= :after_time AND created_at < :before_time
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:name AS TEXT) IS NULL OR name = :name)
GROUP BY status, name;

-- name: wf_count_text
SELECT w.status, w.name, count(*)
FROM sk_workflow_attributes a
-- sqlite: JOIN sk_workflows w ON w.namespace = a.namespace AND w.id = a.workflow_id
-- postgres: CROSS JOIN LATERAL (SELECT id, name, status, created_at, updated_at, version
-- postgres:     FROM sk_workflows WHERE namespace = a.namespace AND id = a.workflow_id
-- postgres:     LIMIT 1) w
WHERE a.namespace = :namespace AND a.name = :attr AND a.text_value = :attr_text
  AND a.created_at >= :after_time AND a.created_at < :before_time
  AND (CAST(:status AS TEXT) IS NULL OR w.status = :status)
  AND (CAST(:name AS TEXT) IS NULL OR w.name = :name)
  AND NOT EXISTS (
      -- sqlite: SELECT 1 FROM (SELECT json_extract(value, '$.name') AS name,
      -- sqlite:     json_extract(value, '$.text') AS text, json_extract(value, '$.low') AS low,
      -- sqlite:     json_extract(value, '$.high') AS high FROM json_each(:filters_json)) f
      -- postgres: SELECT 1 FROM jsonb_to_recordset(CAST(:filters_json AS jsonb))
      -- postgres:     AS f(name text, text text, low float8, high float8)
      WHERE NOT EXISTS (
          SELECT 1 FROM sk_workflow_attributes b
          WHERE b.namespace = :namespace AND b.workflow_id = a.workflow_id
            AND b.name = f.name
            AND (b.text_value = f.text OR (f.text IS NULL AND b.number_value IS NOT NULL
                 AND (f.low IS NULL OR b.number_value >= f.low)
                 AND (f.high IS NULL OR b.number_value <= f.high)))))
GROUP BY w.status, w.name;

-- name: wf_count_number
SELECT w.status, w.name, count(*)
FROM sk_workflow_attributes a
-- sqlite: JOIN sk_workflows w ON w.namespace = a.namespace AND w.id = a.workflow_id
-- postgres: CROSS JOIN LATERAL (SELECT id, name, status, created_at, updated_at, version
-- postgres:     FROM sk_workflows WHERE namespace = a.namespace AND id = a.workflow_id
-- postgres:     LIMIT 1) w
WHERE a.namespace = :namespace AND a.name = :attr
  AND a.number_value >= :number_low AND a.number_value <= :number_high
  AND a.created_at >= :after_time AND a.created_at < :before_time
  AND (CAST(:status AS TEXT) IS NULL OR w.status = :status)
  AND (CAST(:name AS TEXT) IS NULL OR w.name = :name)
  AND NOT EXISTS (
      -- sqlite: SELECT 1 FROM (SELECT json_extract(value, '$.name') AS name,
      -- sqlite:     json_extract(value, '$.text') AS text, json_extract(value, '$.low') AS low,
      -- sqlite:     json_extract(value, '$.high') AS high FROM json_each(:filters_json)) f
      -- postgres: SELECT 1 FROM jsonb_to_recordset(CAST(:filters_json AS jsonb))
      -- postgres:     AS f(name text, text text, low float8, high float8)
      WHERE NOT EXISTS (
          SELECT 1 FROM sk_workflow_attributes b
          WHERE b.namespace = :namespace AND b.workflow_id = a.workflow_id
            AND b.name = f.name
            AND (b.text_value = f.text OR (f.text IS NULL AND b.number_value IS NOT NULL
                 AND (f.low IS NULL OR b.number_value >= f.low)
                 AND (f.high IS NULL OR b.number_value <= f.high)))))
GROUP BY w.status, w.name;
