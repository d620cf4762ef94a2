-- name: flow_admit
-- Release :released (if given) and admit up to :max runs of its queue (or of :queue),
-- under the queue's advisory lock: the function sk_flow_admit (schema/postgres.sql), one
-- round trip. How many were admitted.
SELECT sk_flow_admit(:namespace, CAST(:queue AS TEXT), CAST(:released AS TEXT),
                     CAST(:now AS DOUBLE PRECISION), CAST(:max AS INTEGER));
