-- Uploads through signed URLs (storage/upload_ops.py; table sk_uploads).

-- name: upload_create
INSERT INTO sk_uploads (namespace, id, state, target_kind, target, max_bytes, sha256,
                        content_type, created_at, expires_at)
VALUES (:namespace, :id, 'pending', :target_kind, :target, :max_bytes, :sha256,
        :content_type, :now, :expires_at);

-- name: upload_get
SELECT state, target_kind, target, max_bytes, sha256, content_type, created_at, expires_at,
       blob, size, digest, completed_at, started, attempts, start_error
FROM sk_uploads WHERE namespace = :namespace AND id = :id;

-- name: upload_complete
-- The file written: its blob (now referred to by this row), size and SHA-256; no row if
-- the upload is not pending any more (completed by another PUT, or forgotten). The
-- upkeep starts it from :retry_at if the PUT's own start does not happen.
UPDATE sk_uploads SET state = 'complete', blob = :blob, size = :size, digest = :digest,
                      completed_at = :now, retry_at = :retry_at
WHERE namespace = :namespace AND id = :id AND state = 'pending'
RETURNING id;

-- name: upload_started
UPDATE sk_uploads SET started = :started, checked_at = :now
WHERE namespace = :namespace AND id = :id AND started IS NULL;

-- name: upload_unstarted
-- Complete uploads whose start did not happen (the process stopped in between, or the
-- start failed), due to be tried at :now, in the namespaces a process serves (their
-- workflows are its own), the longest due first.
-- sqlite: SELECT namespace, id, attempts FROM sk_uploads
-- sqlite: WHERE state = 'complete' AND started IS NULL AND retry_at <= :now
-- sqlite:   AND namespace IN (SELECT value FROM json_each(:namespaces_json))
-- postgres: SELECT namespace, id, attempts FROM sk_uploads
-- postgres: WHERE state = 'complete' AND started IS NULL AND retry_at <= :now
-- postgres:   AND namespace = ANY(:namespaces)
ORDER BY retry_at
LIMIT :limit;

-- name: upload_start_failed
-- A start that failed: counted, its error kept, tried again at :retry_at; given up
-- (:failed = 1) the upload is failed and :retry_at is when it is forgotten.
UPDATE sk_uploads
SET attempts = attempts + 1, start_error = :error, retry_at = :retry_at,
    state = CASE WHEN :failed = 1 THEN 'failed' ELSE state END
WHERE namespace = :namespace AND id = :id AND state = 'complete' AND started IS NULL;

-- name: upload_forget_expired
-- Pending uploads past their URL's expiry, every namespace (they hold no blob yet).
DELETE FROM sk_uploads WHERE (namespace, id) IN (
    SELECT namespace, id FROM sk_uploads
    WHERE state = 'pending' AND expires_at < :now
    ORDER BY expires_at
    LIMIT :limit
);

-- name: upload_forget_failed
-- Uploads whose start was given up, past the time they are kept (their file with them).
DELETE FROM sk_uploads WHERE (namespace, id) IN (
    SELECT namespace, id FROM sk_uploads
    WHERE state = 'failed' AND retry_at < :now
    ORDER BY retry_at
    LIMIT :limit
);

-- name: upload_least_checked
-- Started uploads, the least recently checked first (is what they started still there?).
SELECT namespace, id, target_kind, started FROM sk_uploads
WHERE started IS NOT NULL
ORDER BY checked_at
LIMIT :limit;

-- name: upload_checked
UPDATE sk_uploads SET checked_at = :now WHERE namespace = :namespace AND id = :id;

-- name: upload_forget
-- An upload and, through the trigger on blob, its file.
DELETE FROM sk_uploads WHERE namespace = :namespace AND id = :id;
