-- Uploads through signed URLs (POST /v1/uploads, then a PUT of the file to its URL):
-- pending until the file is written, then complete with its blob (a counted reference,
-- as in every payload column), size and SHA-256; started holds the workflow id or
-- message id it started once that is done (a complete upload not started yet is
-- started by the upkeep: the start is idempotent). The upkeep forgets pending uploads
-- past expires_at, and complete ones whose workflow or message is gone, checking the
-- least recently checked first (checked_at); the blob goes with the row.
CREATE TABLE sk_uploads (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    state        TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target       TEXT NOT NULL,
    max_bytes    INTEGER NOT NULL,
    sha256       TEXT,
    content_type TEXT,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL,
    blob         BLOB,
    size         INTEGER,
    digest       TEXT,
    completed_at REAL,
    started      TEXT,
    checked_at   REAL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX sk_uploads_pending ON sk_uploads (expires_at) WHERE state = 'pending';
CREATE INDEX sk_uploads_unstarted ON sk_uploads (namespace, completed_at)
    WHERE state = 'complete' AND started IS NULL;
CREATE INDEX sk_uploads_checked ON sk_uploads (checked_at) WHERE started IS NOT NULL;

CREATE TRIGGER sk_blob_ref_sk_uploads_blob_i AFTER INSERT ON sk_uploads
WHEN substr(NEW.blob, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.blob, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.blob, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_u AFTER UPDATE OF blob ON sk_uploads
WHEN NEW.blob IS NOT OLD.blob AND (substr(NEW.blob, 1, 4) = X'FF534B52' OR substr(OLD.blob, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.blob, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.blob, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.blob, 1, 4) = X'FF534B52' AND id = substr(NEW.blob, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.blob, 1, 4) = X'FF534B52' AND id = substr(OLD.blob, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_d AFTER DELETE ON sk_uploads
WHEN substr(OLD.blob, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.blob, 5, 16); END;
