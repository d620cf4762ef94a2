-- name: sub_checkpoint
UPDATE sk_subscriptions
SET position = greatest(position, :position), failing_position = NULL, failures = 0,
    last_error = NULL, updated_at = :now, parked = parked + :parked
WHERE namespace = :namespace AND name = :name AND lease_token = :token
RETURNING position;
