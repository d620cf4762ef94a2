-- Pausing workflows. sk_workflows.cancel_requested holds what was asked of a workflow
-- that has not finished: 0 nothing, 1 a cancel, 2 a pause (values, not flags: a cancel
-- replaces a pause, and a pause is never set over a cancel). Every fenced checkpoint
-- reads it back, so a runner learns of a pause where it learns of a cancel.
-- A paused workflow is never due: the index of due workflows leaves it out, and the
-- lease and next-due statements say `cancel_requested <> 2` to use that index.
DROP INDEX sk_workflows_due;

CREATE INDEX sk_workflows_due ON sk_workflows (namespace, wake_at)
    WHERE wake_at IS NOT NULL AND cancel_requested <> 2;
