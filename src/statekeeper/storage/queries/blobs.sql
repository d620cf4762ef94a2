-- Out-of-line payloads (storage/blob_ops.py): a blob's row, counted references kept by
-- the payload columns' triggers, and its chunks when the database holds them.

-- name: blob_create
INSERT INTO sk_blobs (id, namespace, store, created_at) VALUES (:blob_id, :namespace, :store, :now);

-- name: blob_chunk
INSERT INTO sk_blob_chunks (blob_id, seq, data) VALUES (:blob_id, :seq, :data);

-- name: blob_touch
-- A blob being written: its time moves on with every batch, so that the sweep (which
-- takes unreferenced blobs older than its grace period) leaves a long write alone; no
-- row if the blob is gone (swept) or referred to already.
UPDATE sk_blobs SET created_at = :now WHERE id = :blob_id AND refs <= 0 AND size IS NULL
RETURNING id;

-- name: blob_complete
-- The last chunk written: the blob's size and number of chunks (and its time, as a touch).
UPDATE sk_blobs SET size = :size, chunks = :chunks, created_at = :now
WHERE id = :blob_id AND size IS NULL
RETURNING id;

-- name: blob_info
SELECT namespace, store, size, chunks, refs FROM sk_blobs WHERE id = :blob_id;

-- name: blob_chunks
-- A run of a blob's chunks in order, from seq :start (the primary key's order).
SELECT seq, data FROM sk_blob_chunks
WHERE blob_id = :blob_id AND seq >= :start AND seq < :stop
ORDER BY seq;

-- name: blob_unreferenced
-- Blobs no row refers to: released (their last reference gone) or never referenced
-- and older than the grace period (their writer stopped before its row committed).
-- Only those whose chunks this process can remove: in the database, or in its store.
SELECT id, store FROM sk_blobs
WHERE refs <= 0 AND (created_at < :before OR released_at IS NOT NULL)
  AND (store = 'db' OR store = :own_store)
ORDER BY created_at
LIMIT :limit;

-- name: blob_forget
-- A blob's row, while still unreferenced (a row that referred to it since keeps it).
DELETE FROM sk_blobs WHERE id = :blob_id AND refs <= 0 RETURNING store;

-- name: blob_forget_chunks
DELETE FROM sk_blob_chunks WHERE blob_id = :blob_id;

-- name: blob_insert
-- A blob written whole in the transaction of the row that refers to it (a large message
-- body): complete at once, in the database.
INSERT INTO sk_blobs (id, namespace, store, size, chunks, created_at)
VALUES (:blob_id, :namespace, 'db', :size, :chunks, :now);
