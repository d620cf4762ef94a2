-- The W3C trace context (traceparent) of the span that started a workflow, when traces
-- are recorded (observability/tracing.py): the runner that runs the workflow, on any
-- process and after any crash, opens its spans as children of it. NULL without traces.
ALTER TABLE sk_workflows ADD COLUMN trace TEXT;
