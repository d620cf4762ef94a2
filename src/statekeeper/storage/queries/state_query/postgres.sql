-- The pieces of a state query on PostgreSQL, put together by storage/state_query_ops.py.
-- A {slot} is filled with a bound parameter's placeholder ($1, $2...) or with another
-- piece of this file; user text only ever travels as a bound parameter. ``doc`` is the
-- value as jsonb, NULL for a value that cannot be queried (see docs/sidecar.md) or is
-- stored out of line (its row holds a reference, starting with byte FF): a
-- LATERAL subquery that OFFSET 0 keeps apart, so that it is parsed once per row while
-- the rows still come in key order from the primary key (a page stops early). A JSON
-- path ({x}) is a chain of ``-> $n::text`` (member names only: a digit never indexes an
-- array, as on SQLite).

-- name: select
SELECT key, value, etag, expires_at{columns}
FROM sk_state,
     LATERAL (
         SELECT CASE WHEN position('\x5c7530303030'::bytea IN value) = 0
                          AND substring(value FROM 1 FOR 1) <> '\xff'::bytea
                     THEN convert_from(value, 'UTF8')::jsonb END AS doc
         OFFSET 0
     ) AS parsed
WHERE namespace = {namespace} AND key >= {low}::text{below}{after_key}
  AND key_id IS NULL
  AND (expires_at IS NULL OR expires_at > {now})
  AND {filter}
ORDER BY {order}
LIMIT {limit}

-- name: below
 AND key < {key}::text

-- name: after_key
 AND key > {key}::text

-- name: step
 -> {name}::text

-- name: present
({x}) IS NOT NULL

-- name: equal
({x}) = {value}::jsonb

-- name: any_of
({x}) = ANY({values}::jsonb[])

-- name: number_compare
CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END {op} {value}::numeric

-- name: string_compare
CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x}) #>> '{}' END COLLATE "C" {op} {value}::text

-- name: sort_rank
CASE jsonb_typeof({x}) WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 3
    WHEN 'array' THEN 3 WHEN 'boolean' THEN 4 ELSE 0 END

-- name: sort_number
CASE jsonb_typeof({x}) WHEN 'number' THEN ({x})::numeric
    WHEN 'boolean' THEN CASE WHEN ({x}) = 'true'::jsonb THEN 1 ELSE 0 END ELSE 0 END

-- name: sort_text
(CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x}) #>> '{}' ELSE '' END) COLLATE "C"

-- name: rank_param
{param}::int

-- name: number_param
{param}::numeric

-- name: text_param
{param}::text COLLATE "C"
