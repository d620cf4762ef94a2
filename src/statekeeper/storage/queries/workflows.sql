-- Durable workflows. A workflow is pending, running (leased by an owner under a fence
-- number), sleeping or waiting (no owner; runnable again at wake_at), or finished:
-- succeeded, failed, compensated, cancelled or timed_out. cancel_requested is what was
-- asked of an unfinished one: 0 nothing, 1 a cancel, 2 a pause (migration 0014). A
-- paused workflow is never due (sk_workflows_due leaves it out), and does not finish. A workflow started with a
-- timeout has a deadline (Unix time): the runner ends it timed_out once that passes, and
-- never lets it sleep or wait past it.

-- name: wf_create
INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                          deadline, created_at, updated_at, version, trace)
VALUES (:namespace, :id, :name, 'pending', :input, 0, :now, :parent_id, :deadline, :now, :now,
        :version, :trace)
ON CONFLICT (namespace, id) DO NOTHING
RETURNING id;

-- name: wf_get
SELECT id, name, status, input, output, error, fence, lease_expires_at, wake_at,
       waiting_for, parent_id, cancel_requested, created_at, updated_at, deadline, version
FROM sk_workflows WHERE namespace = :namespace AND id = :id;

-- name: wf_lease
-- Runnable: not finished, not paused, its lease (if any) over, and due. A running
-- workflow's wake_at is its lease end (set here and by the heartbeat), so the range of
-- sk_workflows_due up to now holds what is due and leases that ran out, not the workflows
-- running now; paused ones are not in that index at all.
UPDATE sk_workflows
SET status = 'running', owner = :owner, fence = fence + 1, lease_expires_at = :lease_end,
    wake_at = :lease_end, updated_at = :now,
    -- A run without a version takes this runner's version of its workflow (:version_map,
    -- a JSON object by name): the code that records its journal pins it.
    -- sqlite: version = coalesce(version, (SELECT value FROM json_each(:version_map) WHERE key = sk_workflows.name))
    -- postgres: version = coalesce(version, CAST(CAST(:version_map AS TEXT) AS jsonb) ->> name)
WHERE namespace = :namespace AND id IN (
    SELECT id FROM sk_workflows
    WHERE namespace = :namespace
      AND status IN ('pending', 'running', 'sleeping', 'waiting')
      AND wake_at <= :now
      AND cancel_requested <> 2
      AND (lease_expires_at IS NULL OR lease_expires_at <= :now)
      -- sqlite: AND name IN (SELECT value FROM json_each(:names_json))
      -- postgres: AND name = ANY(:names::text[])
      -- Pinned (version policy): only runs of this worker's versions, or of none.
      AND (version IS NULL OR :any_version = 1
      -- sqlite: OR version IN (SELECT value FROM json_each(:versions_json))
      -- postgres: OR version = ANY(:versions::text[])
      )
    ORDER BY wake_at
    LIMIT :limit
    -- postgres: FOR UPDATE SKIP LOCKED
)
RETURNING id, name, input, fence, cancel_requested, parent_id, created_at, deadline, trace;

-- name: wf_journal
SELECT position, kind, name, output, error, attempts
FROM sk_workflow_steps
WHERE namespace = :namespace AND workflow_id = :id
ORDER BY position;

-- name: wf_renew
-- The heartbeat: the lease, and the wake-up time that keeps a running workflow out of
-- the due range, move on. No row back means the lease is lost.
UPDATE sk_workflows SET lease_expires_at = :lease_end, wake_at = :lease_end, updated_at = :now
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
RETURNING cancel_requested;

-- name: wf_checkpoint_renew
-- The fence check every checkpoint starts with (no row back: the lease is lost). It
-- changes no indexed column, so PostgreSQL can update the row in place.
UPDATE sk_workflows SET lease_expires_at = :lease_end, updated_at = :now
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
RETURNING cancel_requested;

-- name: wf_record_step
-- A step's outcome, or its failed attempts so far (kind 'attempt'), which the next
-- attempt or the outcome replaces; a recorded outcome is never replaced.
INSERT INTO sk_workflow_steps AS s (namespace, workflow_id, position, kind, name, input,
                                    output, error, attempts, started_at, finished_at)
VALUES (:namespace, :id, :position, :kind, :step_name, :input, :output, :error, :attempts,
        :started_at, :now)
ON CONFLICT (namespace, workflow_id, position) DO UPDATE
SET kind = excluded.kind, input = excluded.input, output = excluded.output,
    error = excluded.error, attempts = excluded.attempts, started_at = excluded.started_at,
    finished_at = excluded.finished_at
WHERE s.kind = 'attempt';

-- name: wf_suspend
-- Ends a run without finishing: sleeping until wake_at, or waiting for an event (which
-- may have arrived already: then it is due at once). A cancel asked for during the run
-- makes it due at once too, so that the next run stops it (rather than the sleep).
UPDATE sk_workflows
SET status = :status, owner = NULL, lease_expires_at = NULL, waiting_for = :waiting_for,
    updated_at = :now,
    wake_at = CASE
        WHEN cancel_requested = 1 THEN CAST(:now AS DOUBLE PRECISION)
        WHEN CAST(:waiting_for AS TEXT) IS NOT NULL AND EXISTS (
            SELECT 1 FROM sk_workflow_events e
            WHERE e.namespace = :namespace AND e.workflow_id = :id AND e.name = :waiting_for)
        THEN CAST(:now AS DOUBLE PRECISION) ELSE CAST(:wake_at AS DOUBLE PRECISION) END
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
RETURNING id;

-- name: wf_finish
-- A paused workflow does not finish (no row back): its runner gives it back instead, and
-- it finishes when resumed.
UPDATE sk_workflows
SET status = :status, output = :output, error = :error, owner = NULL,
    lease_expires_at = NULL, wake_at = NULL, waiting_for = NULL, updated_at = :now,
    purge_at = :purge_at
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
  AND cancel_requested <> 2
RETURNING parent_id;

-- name: wf_event_insert
-- Kept even before the workflow waits for it; only for a workflow that exists and has
-- not finished. On PostgreSQL the workflow's row is locked until the event commits, so a
-- finish waits for the event, or the event (re-reading the row) sees the finish: an
-- event is never stored for a workflow that had finished. SQLite's one writer does the
-- same by running one transaction at a time.
INSERT INTO sk_workflow_events (namespace, workflow_id, name, data, received_at)
SELECT :namespace, :id, :event, :data, :now
WHERE EXISTS (
    SELECT 1 FROM sk_workflows
    WHERE namespace = :namespace AND id = :id
      AND status IN ('pending', 'running', 'sleeping', 'waiting')
    -- postgres: FOR NO KEY UPDATE
)
ON CONFLICT (namespace, workflow_id, name) DO NOTHING
RETURNING name;

-- name: wf_event_wake
UPDATE sk_workflows SET wake_at = :now, updated_at = :now
WHERE namespace = :namespace AND id = :id AND status = 'waiting' AND waiting_for = :event;

-- name: wf_heartbeat
-- A callback's heartbeat: when it last beat, kept under the callback's event name with
-- ':heartbeat' (a name no client can send), only for a workflow that has not finished.
INSERT INTO sk_workflow_events (namespace, workflow_id, name, data, received_at)
SELECT :namespace, :id, :event, NULL, :now
WHERE EXISTS (
    SELECT 1 FROM sk_workflows
    WHERE namespace = :namespace AND id = :id
      AND status IN ('pending', 'running', 'sleeping', 'waiting')
)
ON CONFLICT (namespace, workflow_id, name) DO UPDATE SET received_at = excluded.received_at
RETURNING name;

-- name: wf_event_received
SELECT received_at FROM sk_workflow_events
WHERE namespace = :namespace AND workflow_id = :id AND name = :event;

-- name: wf_event_get
SELECT data FROM sk_workflow_events
WHERE namespace = :namespace AND workflow_id = :id AND name = :event;

-- name: wf_cancel
-- A cancel replaces a pause: a paused workflow is due again, and its next run stops it.
UPDATE sk_workflows SET cancel_requested = 1, wake_at = :now, updated_at = :now
WHERE namespace = :namespace AND id = :id
  AND status IN ('pending', 'running', 'sleeping', 'waiting')
RETURNING status;

-- name: wf_pause
-- A workflow that has not finished stops at its next durable point (its runner learns it
-- at its next checkpoint); pausing a paused one changes nothing. No row back: it has
-- finished, does not exist, or is being cancelled.
UPDATE sk_workflows SET cancel_requested = 2, updated_at = :now
WHERE namespace = :namespace AND id = :id
  AND status IN ('pending', 'running', 'sleeping', 'waiting') AND cancel_requested <> 1
RETURNING status;

-- name: wf_resume
-- The pause cleared: the workflow is due again at its own wake_at (a run given back when
-- it paused, or whose event came meanwhile, at once). No row back: it was not paused.
UPDATE sk_workflows SET cancel_requested = 0, updated_at = :now
WHERE namespace = :namespace AND id = :id AND cancel_requested = 2
  AND status IN ('pending', 'running', 'sleeping', 'waiting')
RETURNING status;

-- name: wf_retry
-- A failed or timed-out workflow runs again; a timed-out one without its deadline.
UPDATE sk_workflows
SET status = 'pending', error = NULL, output = NULL, wake_at = :now, updated_at = :now,
    cancel_requested = 0, deadline = NULL, purge_at = NULL
WHERE namespace = :namespace AND id = :id AND status IN ('failed', 'timed_out')
RETURNING id;

-- name: wf_forget_failed_steps
DELETE FROM sk_workflow_steps
WHERE namespace = :namespace AND workflow_id = :id AND error IS NOT NULL AND kind = 'step';

-- name: wf_forget_steps_from
-- A rewound workflow's journal from a position on (the primary key's range); the count
-- of continues (position 0) stays.
DELETE FROM sk_workflow_steps
WHERE namespace = :namespace AND workflow_id = :id AND position >= :position
  AND position > 0;

-- name: wf_purge
-- A finished workflow's row (its journal and events go with it, in the same transaction).
DELETE FROM sk_workflows
WHERE namespace = :namespace AND id = :id
  AND status NOT IN ('pending', 'running', 'sleeping', 'waiting')
RETURNING id;

-- name: wf_purge_steps
DELETE FROM sk_workflow_steps WHERE namespace = :namespace AND workflow_id = :id;

-- name: wf_purge_events
DELETE FROM sk_workflow_events WHERE namespace = :namespace AND workflow_id = :id;

-- name: wf_list
-- Newest first: each filter has its own statement and the index of its order
-- (sk_workflows_listing, _by_status, _by_name), read backwards from the cursor, so that
-- a page costs its own rows whatever the table holds. The first page's cursor is
-- (+infinity, ''). The filters are written `status || ''` and `name || ''`, the
-- expressions their indexes are on (which no other statement writes, so none can pick
-- those indexes).
SELECT id, name, status, created_at, updated_at, version
FROM sk_workflows
WHERE namespace = :namespace
  AND (created_at, id) < (:before_time, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: wf_list_by_status
SELECT id, name, status, created_at, updated_at, version
FROM sk_workflows
WHERE namespace = :namespace AND status || '' = :status
  AND (created_at, id) < (:before_time, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: wf_list_by_name
SELECT id, name, status, created_at, updated_at, version
FROM sk_workflows
WHERE namespace = :namespace AND name || '' = :name
  AND (created_at, id) < (:before_time, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: wf_list_by_status_and_name
SELECT id, name, status, created_at, updated_at, version
FROM sk_workflows
WHERE namespace = :namespace AND status || '' = :status AND name || '' = :name
  AND (created_at, id) < (:before_time, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: wf_history
-- The current run's journal after a position, a page at a time (position 0 is the
-- count of continues, not an entry).
SELECT position, kind, name, input, output, error, attempts, started_at, finished_at
FROM sk_workflow_steps
WHERE namespace = :namespace AND workflow_id = :id AND position > :after
ORDER BY position
LIMIT :limit;

-- name: wf_runs
-- How many times the workflow continued as new (position 0's attempts; none: 0).
SELECT attempts FROM sk_workflow_steps
WHERE namespace = :namespace AND workflow_id = :id AND position = 0;

-- name: wf_next_due
-- Only active workflows have a wake-up time (finishing clears it); paused ones are not due.
SELECT min(wake_at) FROM sk_workflows
WHERE namespace = :namespace AND wake_at IS NOT NULL AND cancel_requested <> 2;

-- name: wf_continue
-- ctx.continue_as_new: the run ends and the workflow starts over with a new input, due at
-- once, only while this runner's fence holds. Its deadline, pause or cancel request stay.
-- Its consumed events and its journal go in the same transaction (wf_continue_events,
-- wf_continue_steps), and its count of continues goes up (wf_continue_count).
UPDATE sk_workflows
SET status = 'pending', input = :input, owner = NULL, lease_expires_at = NULL,
    waiting_for = NULL, wake_at = :now, updated_at = :now
WHERE namespace = :namespace AND id = :id AND fence = :fence AND status = 'running'
RETURNING id;

-- name: wf_continue_events
-- The events a continued run is done with: those its journal consumed (a wait recorded
-- them), and its callbacks' answers and heartbeats (a callback belongs to its run).
-- Events received but not consumed yet stay for the next run.
DELETE FROM sk_workflow_events
WHERE namespace = :namespace AND workflow_id = :id
  AND (name LIKE 'callback:%' OR EXISTS (
      SELECT 1 FROM sk_workflow_steps s
      WHERE s.namespace = :namespace AND s.workflow_id = :id
        AND s.kind = 'event' AND s.name = sk_workflow_events.name));

-- name: wf_continue_steps
-- A continued run's journal: every entry but the count of continues (position 0).
DELETE FROM sk_workflow_steps
WHERE namespace = :namespace AND workflow_id = :id AND position > 0;

-- name: wf_continue_count
-- How many times the workflow continued as new: the attempts of journal position 0, an
-- entry no run records (runs record from position 1). Read with the journal, so a run
-- knows it without a query of its own; history leaves it out.
INSERT INTO sk_workflow_steps AS s (namespace, workflow_id, position, kind, name, attempts,
                                    finished_at)
VALUES (:namespace, :id, 0, 'continued', 'continued', 1, :now)
ON CONFLICT (namespace, workflow_id, position) DO UPDATE
SET attempts = s.attempts + 1, finished_at = excluded.finished_at;

-- name: wf_move_version
-- Version moves (workflows/versions.py): the unfinished runs of one version, optionally
-- of one workflow name, take another (sk_workflows_by_version's range); finished runs
-- keep the version they ran on.
UPDATE sk_workflows SET version = :to_version, updated_at = :now
WHERE namespace = :namespace AND version = :from_version
  AND status IN ('pending', 'running', 'sleeping', 'waiting')
  AND (CAST(:name AS TEXT) IS NULL OR name = :name)
RETURNING id;

-- name: wf_move_version_of
-- One unfinished run takes a version (from any version, or only from :from_version).
-- Its status test is written as the finished ones left out, so that the statement does
-- not match the predicate of sk_workflows_by_version (the primary key finds the row).
UPDATE sk_workflows SET version = :to_version, updated_at = :now
WHERE namespace = :namespace AND id = :id
  AND status NOT IN ('succeeded', 'failed', 'compensated', 'cancelled', 'timed_out')
  AND (CAST(:from_version AS TEXT) IS NULL OR version = :from_version)
RETURNING id;

-- name: wf_fork_step
-- A forked run's copy of one journal entry of the run it forks (re-sealed for its id).
INSERT INTO sk_workflow_steps (namespace, workflow_id, position, kind, name, input, output,
                               error, attempts, started_at, finished_at)
VALUES (:namespace, :id, :position, :kind, :step_name, :input, :output, :error, :attempts,
        :started_at, :finished_at);

-- name: wf_expired_mark
-- Retention: a batch of the runs whose purge time has passed, oldest first (:limit of
-- sk_workflows_expiry's range, in every namespace), chosen once and marked (purge_at -1,
-- a time no run is stamped with) under this transaction's row locks; the statements
-- after it delete the marked runs' journals, events, attributes, mailboxes, updates,
-- published values, durable streams and queue places, then the runs (wf_expired_runs),
-- in the same transaction. Chosen once: each statement reads what is committed when it starts, so a
-- batch chosen again by each could differ from one statement to the next when another
-- process purges at the same time (PostgreSQL skips the rows it has locked). A run
-- retried meanwhile waits for this transaction, then finds no run to retry.
UPDATE sk_workflows SET purge_at = -1
WHERE (namespace, id) IN (
    SELECT namespace, id FROM sk_workflows
    WHERE purge_at >= 0 AND purge_at <= :now
    ORDER BY purge_at, namespace, id
    LIMIT :limit
    -- postgres: FOR UPDATE SKIP LOCKED
);

-- name: wf_expired_steps
DELETE FROM sk_workflow_steps
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_events
DELETE FROM sk_workflow_events
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_attributes
DELETE FROM sk_workflow_attributes
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_messages
DELETE FROM sk_workflow_messages
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_updates
DELETE FROM sk_workflow_updates
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_values
DELETE FROM sk_workflow_values
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_streams
DELETE FROM sk_workflow_streams
WHERE (namespace, workflow_id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_flow_runs
DELETE FROM sk_flow_runs
WHERE (namespace, id) IN (SELECT namespace, id FROM sk_workflows WHERE purge_at = -1);

-- name: wf_expired_runs
DELETE FROM sk_workflows WHERE purge_at = -1;

-- name: wf_active_counts
-- Active runs by status and name (what /metrics shows): one range of
-- sk_workflows_by_status per active status, so the cost follows the active runs, not
-- the finished ones kept.
SELECT status, name, count(*) FROM sk_workflows
WHERE namespace = :namespace AND (status || '') IN ('pending', 'running', 'sleeping', 'waiting')
GROUP BY status, name;

-- name: wf_due_summary
-- Runs due now (a timer, a retry, a lease run out) and the earliest one's due time:
-- the range of sk_workflows_due up to :now.
SELECT count(*), min(wake_at) FROM sk_workflows
WHERE namespace = :namespace AND wake_at IS NOT NULL AND cancel_requested <> 2
  AND wake_at <= :now;

-- name: wf_created_per_minute
-- Runs created since :hour_start by minute (0 the first) and status: the range of
-- sk_workflows_listing from :hour_start (the dashboard's charts of the last hour).
SELECT
-- sqlite:   CAST((created_at - :hour_start) / 60 AS INTEGER) AS minute,
-- postgres:   CAST(floor((created_at - :hour_start) / 60) AS INTEGER) AS minute,
  status, count(*)
FROM sk_workflows
WHERE namespace = :namespace AND created_at >= :hour_start
GROUP BY minute, status;

-- name: wf_trace
SELECT trace FROM sk_workflows WHERE namespace = :namespace AND id = :id;
