-- A workflow queue's start rules as the code declares them, stored beside its limits so
-- that a process that does not declare the queue (a schedule created over HTTP or the
-- command line) can check a schedule against them: start_rule is 'reject' (singleton,
-- a second start of a busy key refused), 'queue' (singleton, one run per key at a time),
-- 'debounce', or NULL; key_field the input field a start's key is taken from, if the
-- queue names one (NULL: none, or a function of the input).

ALTER TABLE sk_flow_queues ADD COLUMN start_rule TEXT;
ALTER TABLE sk_flow_queues ADD COLUMN key_field TEXT;
