-- Subscriptions to the event log, their parked events, projections (subscription_ops.py).

-- name: sub_create
INSERT INTO sk_subscriptions (namespace, name, position, created_at, updated_at)
VALUES (:namespace, :name, :position, :now, :now)
ON CONFLICT (namespace, name) DO NOTHING;

-- name: sub_lease
-- Take (or renew) a subscription's lease when it is free, expired or already ours;
-- its checkpoint and the event it is failing on back, nothing when another holds it.
UPDATE sk_subscriptions
SET lease_token = :token, lease_expires_at = :lease_end, holder = :holder, updated_at = :now
WHERE namespace = :namespace AND name = :name
  AND (lease_token IS NULL OR lease_token = :token OR lease_expires_at < :now)
RETURNING position, failing_position, failures;

-- name: sub_release
UPDATE sk_subscriptions SET lease_token = NULL, lease_expires_at = NULL, holder = NULL
WHERE namespace = :namespace AND name = :name AND lease_token = :token;

-- name: sub_checkpoint
-- SQLite's part of a unit of work: the checkpoint advanced under the lease.
UPDATE sk_subscriptions
SET position = max(position, :position), failing_position = NULL, failures = 0,
    last_error = NULL, updated_at = :now, parked = parked + :parked
WHERE namespace = :namespace AND name = :name AND lease_token = :token
RETURNING position;

-- name: sub_track
-- A tracking position, without a lease (SQLite's part of a unit of work): the row
-- created, or moved strictly up; no row back when it holds this position or a later one.
INSERT INTO sk_subscriptions AS s (namespace, name, position, created_at, updated_at)
VALUES (:namespace, :name, :position, :now, :now)
ON CONFLICT (namespace, name) DO UPDATE
SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
WHERE s.position < EXCLUDED.position
RETURNING position;

-- name: sub_park
INSERT INTO sk_parked_events (namespace, subscription, position, error, attempts, parked_at)
VALUES (:namespace, :name, :position, :error, :attempts, :now)
ON CONFLICT (namespace, subscription, position) DO NOTHING;

-- name: sub_fail
-- A handler failed on the event at ``position``: how many times in a row, and why.
UPDATE sk_subscriptions
SET failures = CASE WHEN failing_position = :position THEN failures + 1 ELSE 1 END,
    failing_position = :position, last_error = :error, updated_at = :now
WHERE namespace = :namespace AND name = :name AND lease_token = :token
RETURNING failures;

-- name: sub_get
SELECT name, position, holder, lease_expires_at, failing_position, failures, last_error,
       parked, created_at, updated_at
FROM sk_subscriptions WHERE namespace = :namespace AND name = :name;

-- name: sub_list
SELECT name, position, holder, lease_expires_at, failing_position, failures, last_error,
       parked, created_at, updated_at
FROM sk_subscriptions WHERE namespace = :namespace AND name > :after
ORDER BY name
LIMIT :limit;

-- name: sub_delete
DELETE FROM sk_subscriptions WHERE namespace = :namespace AND name = :name;

-- name: sub_parked_delete_all
DELETE FROM sk_parked_events WHERE namespace = :namespace AND subscription = :name;

-- name: sub_parked
SELECT position, error, attempts, parked_at FROM sk_parked_events
WHERE namespace = :namespace AND subscription = :name AND position > :after
ORDER BY position
LIMIT :limit;

-- name: proj_get
SELECT generation, building, updated_at FROM sk_projections
WHERE namespace = :namespace AND name = :name;

-- name: proj_create
INSERT INTO sk_projections (namespace, name, generation, building, updated_at)
VALUES (:namespace, :name, 1, NULL, :now)
ON CONFLICT (namespace, name) DO NOTHING;

-- name: proj_build
-- Start building generation ``building`` unless one is being built already.
UPDATE sk_projections SET building = :building, updated_at = :now
WHERE namespace = :namespace AND name = :name AND building IS NULL
RETURNING building;

-- name: proj_switch
-- Readers move to the generation that was built.
UPDATE sk_projections SET generation = building, building = NULL, updated_at = :now
WHERE namespace = :namespace AND name = :name AND building = :building
RETURNING generation;
