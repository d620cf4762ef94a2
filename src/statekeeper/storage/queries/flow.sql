-- Flow control: named workflow queues (schema: sk_flow_queues, sk_flow_runs). A run
-- started into a queue is a pending workflow with no wake_at (never due) and a 'waiting'
-- row here; admission (flow_admit) makes it 'admitted' and due, within the queue's
-- limits, counted in the database so that they hold across every worker; its end makes
-- it 'done' (flow_release) and admits the next in the same transaction.

-- name: flow_declare
-- A queue's limits and start rules, as the code declares them (NULL: no limit, no rule).
INSERT INTO sk_flow_queues AS q (namespace, name, concurrency, per_key_concurrency,
                                 rate_limit, rate_period, key_rate_limit, key_rate_period,
                                 updated_at, start_rule, key_field)
VALUES (:namespace, :name, :concurrency, :per_key_concurrency, :rate_limit, :rate_period,
        :key_rate_limit, :key_rate_period, :now, :start_rule, :key_field)
ON CONFLICT (namespace, name) DO UPDATE
SET concurrency = excluded.concurrency, per_key_concurrency = excluded.per_key_concurrency,
    rate_limit = excluded.rate_limit, rate_period = excluded.rate_period,
    key_rate_limit = excluded.key_rate_limit, key_rate_period = excluded.key_rate_period,
    updated_at = excluded.updated_at, start_rule = excluded.start_rule,
    key_field = excluded.key_field;

-- name: flow_create_workflow
-- wf_create for a queued run: pending, but not due until admitted, or until its deadline
-- (wake_at; a run leased at its deadline ends timed_out without running); with the trace
-- context it was started in, as wf_create keeps it (NULL without traces).
INSERT INTO sk_workflows (namespace, id, name, status, input, fence, wake_at, parent_id,
                          deadline, created_at, updated_at, version, trace)
VALUES (:namespace, :id, :name, 'pending', :input, 0, :deadline, NULL, :deadline, :now, :now,
        :version, :trace)
ON CONFLICT (namespace, id) DO NOTHING
RETURNING id;

-- name: flow_enqueue
-- The run's place in its queue. No row back: its lock is held (a singleton of that key
-- runs, or a debounced run of that key waits): the caller rolls the start back.
INSERT INTO sk_flow_runs (namespace, id, queue, key, priority, state, not_before, lock,
                          created_at)
VALUES (:namespace, :id, :queue, :key, :priority, 'waiting', :not_before, :lock, :now)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: flow_release
-- A run ended: its slot (and its singleton lock) is given back.
UPDATE sk_flow_runs SET state = 'done', lock = NULL
WHERE namespace = :namespace AND id = :released AND state <> 'done';

-- name: flow_lock_holder
-- The run that holds a lock (a waiting debounced run, a running singleton).
SELECT id, state FROM sk_flow_runs
WHERE namespace = :namespace AND queue = :queue AND lock = :lock;

-- name: flow_debounce
-- Another start of a debounced key while its run waits: the run waits on, until
-- not_before (the window from this start), with this start's input (flow_replace_input).
UPDATE sk_flow_runs SET not_before = :not_before
WHERE namespace = :namespace AND id = :id AND state = 'waiting' AND lock = :lock
RETURNING id;

-- name: flow_replace_input
UPDATE sk_workflows SET input = :input, updated_at = :now
WHERE namespace = :namespace AND id = :id AND status = 'pending';

-- name: flow_run
SELECT queue, key, priority, state, not_before, admitted_at
FROM sk_flow_runs WHERE namespace = :namespace AND id = :id;

-- name: flow_queue_counts
-- A queue's runs waiting and admitted now (ranges of their partial indexes), and its
-- admissions in the last :period seconds.
SELECT
    (SELECT count(*) FROM sk_flow_runs w
     WHERE w.namespace = :namespace AND w.queue = :queue AND w.state = 'waiting'),
    (SELECT count(*) FROM sk_flow_runs a
     WHERE a.namespace = :namespace AND a.queue = :queue AND a.state = 'admitted'),
    (SELECT count(*) FROM sk_flow_runs r
     WHERE r.namespace = :namespace AND r.queue = :queue
       AND r.admitted_at IS NOT NULL AND r.admitted_at > :since);

-- name: flow_queues
SELECT name, concurrency, per_key_concurrency, rate_limit, rate_period, key_rate_limit,
       key_rate_period, updated_at, start_rule, key_field
FROM sk_flow_queues WHERE namespace = :namespace ORDER BY name;

-- name: flow_forget
-- A purged workflow's place in its queue.
DELETE FROM sk_flow_runs WHERE namespace = :namespace AND id = :id;

-- name: flow_queue_limits
-- A message queue's consumers' limits (sk_queue_limits): per_group, messages of one
-- group live at a time, at most (read by the group triggers; 1 keeps FIFO groups);
-- concurrency, messages of the queue leased at a time across every worker (read by
-- queue_receive; NULL: no limit).
INSERT INTO sk_queue_limits AS l (namespace, queue, per_group, concurrency)
VALUES (:namespace, :queue, :per_group, :concurrency)
ON CONFLICT (namespace, queue) DO UPDATE
SET per_group = excluded.per_group, concurrency = excluded.concurrency;

-- name: flow_queue_limits_clear
DELETE FROM sk_queue_limits WHERE namespace = :namespace AND queue = :queue;

-- name: flow_waiting_queue
-- The queue a run waits in (none: it waits in no queue), for an admission pass of it
-- after a change that lets it be admitted (a resume).
SELECT queue FROM sk_flow_runs
WHERE namespace = :namespace AND id = :id AND state = 'waiting';

-- name: flow_requeue
-- A retried or rewound run of a queue waits for admission again (its place by its
-- priority and first start), within its queue's limits: its slot was given back when it
-- ended. No row for a run in no queue.
UPDATE sk_flow_runs SET state = 'waiting', lock = NULL
WHERE namespace = :namespace AND id = :id AND state = 'done'
RETURNING queue;

-- name: flow_requeue_hold
-- ... and its workflow is not due until admitted (wf_retry made it due).
UPDATE sk_workflows SET wake_at = NULL
WHERE namespace = :namespace AND id = :id AND status = 'pending' AND EXISTS (
    SELECT 1 FROM sk_flow_runs f
    WHERE f.namespace = :namespace AND f.id = :id AND f.state = 'waiting');
