-- Schedules into workflow queues: a schedule's fires start their runs queued in the
-- workflow queue ``queue`` (NULL: in none, due at once), under ``queue_key`` (NULL: no
-- key) and ``priority``, as a start with queue=, key= and priority= does. See
-- schema/postgres.sql.
ALTER TABLE sk_schedules ADD COLUMN queue TEXT;
ALTER TABLE sk_schedules ADD COLUMN queue_key TEXT;
ALTER TABLE sk_schedules ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
