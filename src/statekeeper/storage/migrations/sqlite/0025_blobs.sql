-- Out-of-line payloads (claim check, statekeeper.blobs): a payload above the threshold
-- is stored as a blob and its column holds a 20-byte reference instead: the bytes
-- FF 53 4B 52 ("\xffSKR") and the blob's 16-byte id. sk_blobs counts the rows that
-- refer to each blob (refs), kept by the triggers below on every payload column, in
-- the transaction that writes or deletes the row: a copied row adds a reference, a
-- deleted or overwritten one drops it. At zero a blob is marked released, and the
-- sweep removes it with its chunks (in the database or a directory), as it removes
-- blobs never referenced (a writer that stopped before its row committed) once they
-- are older than the grace period. A row that refers to a blob that is gone is refused.
-- size and chunks are NULL until the last chunk is written.

CREATE TABLE sk_blobs (
    id          BLOB PRIMARY KEY,
    namespace   TEXT NOT NULL,
    store       TEXT NOT NULL,
    size        INTEGER,
    chunks      INTEGER,
    refs        INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    released_at REAL
);
CREATE INDEX sk_blobs_unreferenced ON sk_blobs (created_at) WHERE refs <= 0;

-- A blob's bytes in the database: chunk seq of blob blob_id (sealed when encryption is on).
CREATE TABLE sk_blob_chunks (
    blob_id BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (blob_id, seq)
);

-- The count crossing zero: the last reference gone marks the blob released (the sweep
-- removes it and its chunks); a reference coming back (a row deleted and inserted
-- elsewhere in one transaction) takes the mark away.
CREATE TRIGGER sk_blobs_released AFTER UPDATE OF refs ON sk_blobs
WHEN NEW.refs <= 0 AND OLD.refs > 0
BEGIN
    UPDATE sk_blobs SET released_at = (julianday('now') - 2440587.5) * 86400.0
    WHERE id = NEW.id;
END;
CREATE TRIGGER sk_blobs_referred AFTER UPDATE OF refs ON sk_blobs
WHEN NEW.refs > 0 AND OLD.refs <= 0 AND NEW.released_at IS NOT NULL
BEGIN
    UPDATE sk_blobs SET released_at = NULL WHERE id = NEW.id;
END;

CREATE TRIGGER sk_blob_ref_sk_state_value_i AFTER INSERT ON sk_state
WHEN substr(NEW.value, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_state_value_u AFTER UPDATE OF value ON sk_state
WHEN NEW.value IS NOT OLD.value AND (substr(NEW.value, 1, 4) = X'FF534B52' OR substr(OLD.value, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.value, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.value, 1, 4) = X'FF534B52' AND id = substr(NEW.value, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.value, 1, 4) = X'FF534B52' AND id = substr(OLD.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_state_value_d AFTER DELETE ON sk_state
WHEN substr(OLD.value, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.value, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_messages_body_i AFTER INSERT ON sk_messages
WHEN substr(NEW.body, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_messages_body_u AFTER UPDATE OF body ON sk_messages
WHEN NEW.body IS NOT OLD.body AND (substr(NEW.body, 1, 4) = X'FF534B52' OR substr(OLD.body, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.body, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.body, 1, 4) = X'FF534B52' AND id = substr(NEW.body, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.body, 1, 4) = X'FF534B52' AND id = substr(OLD.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_messages_body_d AFTER DELETE ON sk_messages
WHEN substr(OLD.body, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.body, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_message_archive_body_i AFTER INSERT ON sk_message_archive
WHEN substr(NEW.body, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_u AFTER UPDATE OF body ON sk_message_archive
WHEN NEW.body IS NOT OLD.body AND (substr(NEW.body, 1, 4) = X'FF534B52' OR substr(OLD.body, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.body, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.body, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.body, 1, 4) = X'FF534B52' AND id = substr(NEW.body, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.body, 1, 4) = X'FF534B52' AND id = substr(OLD.body, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_d AFTER DELETE ON sk_message_archive
WHEN substr(OLD.body, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.body, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_message_archive_result_i AFTER INSERT ON sk_message_archive
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_u AFTER UPDATE OF result ON sk_message_archive
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_d AFTER DELETE ON sk_message_archive
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_idempotency_result_i AFTER INSERT ON sk_idempotency
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_u AFTER UPDATE OF result ON sk_idempotency
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_d AFTER DELETE ON sk_idempotency
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflows_input_i AFTER INSERT ON sk_workflows
WHEN substr(NEW.input, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_input_u AFTER UPDATE OF input ON sk_workflows
WHEN NEW.input IS NOT OLD.input AND (substr(NEW.input, 1, 4) = X'FF534B52' OR substr(OLD.input, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.input, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.input, 1, 4) = X'FF534B52' AND id = substr(NEW.input, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.input, 1, 4) = X'FF534B52' AND id = substr(OLD.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_input_d AFTER DELETE ON sk_workflows
WHEN substr(OLD.input, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.input, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflows_output_i AFTER INSERT ON sk_workflows
WHEN substr(NEW.output, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_output_u AFTER UPDATE OF output ON sk_workflows
WHEN NEW.output IS NOT OLD.output AND (substr(NEW.output, 1, 4) = X'FF534B52' OR substr(OLD.output, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.output, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.output, 1, 4) = X'FF534B52' AND id = substr(NEW.output, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.output, 1, 4) = X'FF534B52' AND id = substr(OLD.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflows_output_d AFTER DELETE ON sk_workflows
WHEN substr(OLD.output, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.output, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_i AFTER INSERT ON sk_workflow_steps
WHEN substr(NEW.input, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_u AFTER UPDATE OF input ON sk_workflow_steps
WHEN NEW.input IS NOT OLD.input AND (substr(NEW.input, 1, 4) = X'FF534B52' OR substr(OLD.input, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.input, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.input, 1, 4) = X'FF534B52' AND id = substr(NEW.input, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.input, 1, 4) = X'FF534B52' AND id = substr(OLD.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_d AFTER DELETE ON sk_workflow_steps
WHEN substr(OLD.input, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.input, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_i AFTER INSERT ON sk_workflow_steps
WHEN substr(NEW.output, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_u AFTER UPDATE OF output ON sk_workflow_steps
WHEN NEW.output IS NOT OLD.output AND (substr(NEW.output, 1, 4) = X'FF534B52' OR substr(OLD.output, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.output, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.output, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.output, 1, 4) = X'FF534B52' AND id = substr(NEW.output, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.output, 1, 4) = X'FF534B52' AND id = substr(OLD.output, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_d AFTER DELETE ON sk_workflow_steps
WHEN substr(OLD.output, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.output, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_i AFTER INSERT ON sk_workflow_events
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_u AFTER UPDATE OF data ON sk_workflow_events
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_d AFTER DELETE ON sk_workflow_events
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_events_data_i AFTER INSERT ON sk_events
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_events_data_u AFTER UPDATE OF data ON sk_events
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_events_data_d AFTER DELETE ON sk_events
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_i AFTER INSERT ON sk_event_snapshots
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_u AFTER UPDATE OF data ON sk_event_snapshots
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_d AFTER DELETE ON sk_event_snapshots
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_i AFTER INSERT ON sk_workflow_messages
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_u AFTER UPDATE OF data ON sk_workflow_messages
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_d AFTER DELETE ON sk_workflow_messages
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_i AFTER INSERT ON sk_workflow_updates
WHEN substr(NEW.data, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_u AFTER UPDATE OF data ON sk_workflow_updates
WHEN NEW.data IS NOT OLD.data AND (substr(NEW.data, 1, 4) = X'FF534B52' OR substr(OLD.data, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.data, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.data, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.data, 1, 4) = X'FF534B52' AND id = substr(NEW.data, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.data, 1, 4) = X'FF534B52' AND id = substr(OLD.data, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_d AFTER DELETE ON sk_workflow_updates
WHEN substr(OLD.data, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.data, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_i AFTER INSERT ON sk_workflow_updates
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_u AFTER UPDATE OF result ON sk_workflow_updates
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_d AFTER DELETE ON sk_workflow_updates
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_i AFTER INSERT ON sk_workflow_values
WHEN substr(NEW.value, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_u AFTER UPDATE OF value ON sk_workflow_values
WHEN NEW.value IS NOT OLD.value AND (substr(NEW.value, 1, 4) = X'FF534B52' OR substr(OLD.value, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.value, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.value, 1, 4) = X'FF534B52' AND id = substr(NEW.value, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.value, 1, 4) = X'FF534B52' AND id = substr(OLD.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_d AFTER DELETE ON sk_workflow_values
WHEN substr(OLD.value, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.value, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_schedules_input_i AFTER INSERT ON sk_schedules
WHEN substr(NEW.input, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_schedules_input_u AFTER UPDATE OF input ON sk_schedules
WHEN NEW.input IS NOT OLD.input AND (substr(NEW.input, 1, 4) = X'FF534B52' OR substr(OLD.input, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.input, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.input, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.input, 1, 4) = X'FF534B52' AND id = substr(NEW.input, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.input, 1, 4) = X'FF534B52' AND id = substr(OLD.input, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_schedules_input_d AFTER DELETE ON sk_schedules
WHEN substr(OLD.input, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.input, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_entities_state_i AFTER INSERT ON sk_entities
WHEN substr(NEW.state, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.state, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.state, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entities_state_u AFTER UPDATE OF state ON sk_entities
WHEN NEW.state IS NOT OLD.state AND (substr(NEW.state, 1, 4) = X'FF534B52' OR substr(OLD.state, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.state, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.state, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.state, 1, 4) = X'FF534B52' AND id = substr(NEW.state, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.state, 1, 4) = X'FF534B52' AND id = substr(OLD.state, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entities_state_d AFTER DELETE ON sk_entities
WHEN substr(OLD.state, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.state, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_i AFTER INSERT ON sk_entity_calls
WHEN substr(NEW.result, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_u AFTER UPDATE OF result ON sk_entity_calls
WHEN NEW.result IS NOT OLD.result AND (substr(NEW.result, 1, 4) = X'FF534B52' OR substr(OLD.result, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.result, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.result, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.result, 1, 4) = X'FF534B52' AND id = substr(NEW.result, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.result, 1, 4) = X'FF534B52' AND id = substr(OLD.result, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_d AFTER DELETE ON sk_entity_calls
WHEN substr(OLD.result, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.result, 5, 16); END;

CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_i AFTER INSERT ON sk_workflow_streams
WHEN substr(NEW.value, 1, 4) = X'FF534B52'
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1 WHERE id = substr(NEW.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_u AFTER UPDATE OF value ON sk_workflow_streams
WHEN NEW.value IS NOT OLD.value AND (substr(NEW.value, 1, 4) = X'FF534B52' OR substr(OLD.value, 1, 4) = X'FF534B52')
BEGIN
    SELECT RAISE(ABORT, 'statekeeper: a row refers to a blob that is gone')
    WHERE substr(NEW.value, 1, 4) = X'FF534B52'
      AND NOT EXISTS (SELECT 1 FROM sk_blobs WHERE id = substr(NEW.value, 5, 16));
    UPDATE sk_blobs SET refs = refs + 1
    WHERE substr(NEW.value, 1, 4) = X'FF534B52' AND id = substr(NEW.value, 5, 16);
    UPDATE sk_blobs SET refs = refs - 1
    WHERE substr(OLD.value, 1, 4) = X'FF534B52' AND id = substr(OLD.value, 5, 16);
END;
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_d AFTER DELETE ON sk_workflow_streams
WHEN substr(OLD.value, 1, 4) = X'FF534B52'
BEGIN UPDATE sk_blobs SET refs = refs - 1 WHERE id = substr(OLD.value, 5, 16); END;
