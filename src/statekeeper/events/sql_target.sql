-- Projections into another PostgreSQL database (events/sql_target.py): each
-- generation's checkpoint, failures and parked events, kept in that database beside
-- the read model, so a handler's writes commit with the checkpoint. Loaded with
-- storage.queries.load_text: these statements run on the read database, never on the
-- app's (whose statements are storage/queries/*.sql).

-- name: target_schema
CREATE TABLE IF NOT EXISTS statekeeper_projections (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    position BIGINT NOT NULL DEFAULT 0,
    holder TEXT,
    failing_position BIGINT,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    parked INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name, generation)
);
CREATE TABLE IF NOT EXISTS statekeeper_parked_events (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    position BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    stream TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name, generation, position)
);

-- name: target_setup_lock
-- Held to COMMIT: processes starting together create the tables one after another.
SELECT pg_advisory_xact_lock(:key);

-- name: target_create
-- The generation's checkpoint, unless it exists: a row back when it is new.
INSERT INTO statekeeper_projections (namespace, name, generation, created_at, updated_at)
VALUES (:namespace, :name, :generation, :now, :now)
ON CONFLICT (namespace, name, generation) DO NOTHING
RETURNING position;

-- name: target_lock
-- The checkpoint, locked to COMMIT; nothing while another process's transaction holds
-- it (that process is handling the next events).
SELECT position, failing_position, failures FROM statekeeper_projections
WHERE namespace = :namespace AND name = :name AND generation = :generation
FOR UPDATE SKIP LOCKED;

-- name: target_position
SELECT position FROM statekeeper_projections
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_get
SELECT position, holder, failing_position, failures, last_error, parked, created_at,
       updated_at
FROM statekeeper_projections
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_advance
-- Events handled up to ``position``: a failure being retried is over (its error goes
-- with it; the error of a parked event stays until the next failure).
UPDATE statekeeper_projections
SET position = :position, holder = :holder, updated_at = :now,
    last_error = CASE WHEN failing_position IS NULL THEN last_error END,
    failing_position = NULL, failures = 0
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_fail
-- The handler failed on the event at ``failing`` for the ``failures``-th time in a row;
-- the events before it are handled up to ``position``.
UPDATE statekeeper_projections
SET position = :position, holder = :holder, updated_at = :now,
    failing_position = :failing, failures = :failures, last_error = :error
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_park
INSERT INTO statekeeper_parked_events
    (namespace, name, generation, position, event_id, event_type, stream, error, attempts,
     parked_at)
VALUES (:namespace, :name, :generation, :position, :event_id, :event_type, :stream, :error,
        :attempts, :now)
ON CONFLICT (namespace, name, generation, position) DO NOTHING;

-- name: target_parked_advance
UPDATE statekeeper_projections
SET position = :position, holder = :holder, updated_at = :now, parked = parked + 1,
    failing_position = NULL, failures = 0, last_error = :error
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_parked
SELECT position, event_id, event_type, stream, error, attempts, parked_at
FROM statekeeper_parked_events
WHERE namespace = :namespace AND name = :name AND generation = :generation
  AND position > :after
ORDER BY position
LIMIT :limit;

-- name: target_forget
DELETE FROM statekeeper_projections
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_forget_parked
DELETE FROM statekeeper_parked_events
WHERE namespace = :namespace AND name = :name AND generation = :generation;

-- name: target_exists
SELECT to_regclass(:relation) IS NOT NULL;
