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
    max_bytes    BIGINT NOT NULL,
    sha256       TEXT,
    content_type TEXT,
    created_at   DOUBLE PRECISION NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL,
    blob         BYTEA,
    size         BIGINT,
    digest       TEXT,
    completed_at DOUBLE PRECISION,
    started      TEXT,
    checked_at   DOUBLE PRECISION,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX sk_uploads_pending ON sk_uploads (expires_at) WHERE state = 'pending';
CREATE INDEX sk_uploads_unstarted ON sk_uploads (namespace, completed_at)
    WHERE state = 'complete' AND started IS NULL;
CREATE INDEX sk_uploads_checked ON sk_uploads (checked_at) WHERE started IS NOT NULL;

CREATE TRIGGER sk_blob_ref_sk_uploads_blob_i AFTER INSERT ON sk_uploads FOR EACH ROW
    WHEN (substring(NEW.blob FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('blob');
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_u AFTER UPDATE OF blob ON sk_uploads FOR EACH ROW
    WHEN (NEW.blob IS DISTINCT FROM OLD.blob AND (substring(NEW.blob FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.blob FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('blob');
CREATE TRIGGER sk_blob_ref_sk_uploads_blob_d AFTER DELETE ON sk_uploads FOR EACH ROW
    WHEN (substring(OLD.blob FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('blob');
