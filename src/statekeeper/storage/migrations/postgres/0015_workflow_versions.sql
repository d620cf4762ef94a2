-- Workflow versions, forks and retention (issue 12, operations part).
-- version: the application version that started the run (App(version=...), else a hash
-- of the workflow's code); a pinned worker leases only runs of its own versions (and
-- runs with none, started before this migration). purge_at: when a finished run is
-- purged (its finish time plus its retention; NULL: kept), read by upkeep in batches
-- through sk_workflows_expiry. sk_workflows_by_version: the runs of a version that have
-- not finished, the range a version move updates.
ALTER TABLE sk_workflows ADD COLUMN version TEXT;

ALTER TABLE sk_workflows ADD COLUMN purge_at DOUBLE PRECISION;

CREATE INDEX sk_workflows_by_version ON sk_workflows (namespace, version)
    WHERE version IS NOT NULL AND status IN ('pending', 'running', 'sleeping', 'waiting');

CREATE INDEX sk_workflows_expiry ON sk_workflows (purge_at, namespace, id)
    WHERE purge_at IS NOT NULL;
