-- Requests: where a message's outcome goes (reply_to), its result in the archive, the
-- fingerprint that tells a true repeat from a reused key; and idempotency records.
ALTER TABLE sk_messages ADD COLUMN reply_to TEXT;

ALTER TABLE sk_message_archive ADD COLUMN reply_to TEXT;

ALTER TABLE sk_message_archive ADD COLUMN result BYTEA;

ALTER TABLE sk_queue_dedup ADD COLUMN fingerprint TEXT;

CREATE TABLE sk_idempotency (
    namespace        TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    state            TEXT NOT NULL,
    owner            TEXT,
    lease_expires_at DOUBLE PRECISION,
    result           BYTEA,
    expires_at       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE INDEX sk_idempotency_expiry ON sk_idempotency (expires_at);
