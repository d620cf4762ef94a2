-- The pieces of a state query on SQLite, put together by storage/state_query_ops.py.
-- A {slot} is filled with a bound parameter's placeholder (?1, ?2...) or with another
-- piece of this file; user text only ever travels as a bound parameter. ``doc`` is the
-- value as JSON text, NULL for a value that cannot be queried (see docs/sidecar.md) and
-- for one stored out of line (its row holds a reference, starting with byte FF).
-- A JSON path ({path}) is one parameter: '$."a"."b"'.

-- name: select
SELECT key, value, etag, expires_at{columns}
FROM (
    SELECT key, value, etag, expires_at,
           CASE WHEN instr(value, X'5C7530303030') = 0 AND substr(value, 1, 1) <> X'FF'
                THEN CAST(value AS TEXT) END AS doc
    FROM sk_state
    WHERE namespace = {namespace} AND key >= {low}{below}{after_key}
      AND key_id IS NULL
      AND (expires_at IS NULL OR expires_at > {now})
) AS s
WHERE {filter}
ORDER BY {order}
LIMIT {limit}

-- name: below
 AND key < {key}

-- name: after_key
 AND key > {key}

-- name: present
json_type(doc, {path}) IS NOT NULL

-- name: is_null
json_type(doc, {path}) = 'null'

-- name: is_true
json_type(doc, {path}) = 'true'

-- name: is_false
json_type(doc, {path}) = 'false'

-- name: number_compare
(json_type(doc, {path}) IN ('integer', 'real') AND json_extract(doc, {path}) {op} {value})

-- name: string_compare
(json_type(doc, {path}) = 'text' AND json_extract(doc, {path}) {op} {value})

-- name: number_in
(json_type(doc, {path}) IN ('integer', 'real')
 AND json_extract(doc, {path}) IN (SELECT value FROM json_each({values})))

-- name: string_in
(json_type(doc, {path}) = 'text'
 AND json_extract(doc, {path}) IN (SELECT value FROM json_each({values})))

-- name: sort_rank
CASE json_type(doc, {path}) WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2
    WHEN 'object' THEN 3 WHEN 'array' THEN 3 WHEN 'false' THEN 4 WHEN 'true' THEN 4 ELSE 0 END

-- name: sort_number
CASE json_type(doc, {path}) WHEN 'integer' THEN json_extract(doc, {path})
    WHEN 'real' THEN json_extract(doc, {path}) WHEN 'true' THEN 1 ELSE 0 END

-- name: sort_text
CASE json_type(doc, {path}) WHEN 'text' THEN json_extract(doc, {path}) ELSE '' END

-- name: rank_param
{param}

-- name: number_param
{param}

-- name: text_param
{param}
