-- What an upload starts is tried again with a growing pause when it fails (the upkeep),
-- and given up after a bound: attempts counts the failed starts, start_error keeps the
-- last one (shown by GET /v1/uploads/{id}), retry_at is when the upkeep tries next (for
-- a failed upload: when it is forgotten). The upkeep walks unstarted uploads by
-- retry_at, so one that keeps failing waits its turn instead of being first forever.
ALTER TABLE sk_uploads ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sk_uploads ADD COLUMN start_error TEXT;
ALTER TABLE sk_uploads ADD COLUMN retry_at DOUBLE PRECISION;
UPDATE sk_uploads SET retry_at = completed_at WHERE state = 'complete' AND started IS NULL;
DROP INDEX sk_uploads_unstarted;
CREATE INDEX sk_uploads_unstarted ON sk_uploads (namespace, retry_at)
    WHERE state = 'complete' AND started IS NULL;
CREATE INDEX sk_uploads_failed ON sk_uploads (retry_at) WHERE state = 'failed';
