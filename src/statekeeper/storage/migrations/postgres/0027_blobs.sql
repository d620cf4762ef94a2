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
    id          BYTEA PRIMARY KEY,
    namespace   TEXT NOT NULL,
    store       TEXT NOT NULL,
    size        BIGINT,
    chunks      BIGINT,
    refs        BIGINT NOT NULL DEFAULT 0,
    created_at  DOUBLE PRECISION NOT NULL,
    released_at DOUBLE PRECISION
);
CREATE INDEX sk_blobs_unreferenced ON sk_blobs (created_at) WHERE refs <= 0;

-- A blob's bytes in the database: chunk seq of blob blob_id (sealed when encryption is on).
CREATE TABLE sk_blob_chunks (
    blob_id BYTEA NOT NULL,
    seq     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (blob_id, seq)
);

-- Keeps the count of one payload column (the trigger's argument) of the changed row:
-- the last reference gone marks the blob released (the sweep removes it), a reference
-- coming back takes the mark away, and a reference to a blob that is gone is refused.
CREATE FUNCTION sk_blob_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_ref BYTEA;
    new_ref BYTEA;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) USING OLD INTO old_ref;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) USING NEW INTO new_ref;
    END IF;
    IF old_ref IS NOT DISTINCT FROM new_ref THEN
        RETURN NULL;
    END IF;
    IF substring(new_ref FROM 1 FOR 4) = '\xff534b52'::bytea THEN
        UPDATE sk_blobs SET refs = refs + 1, released_at = NULL
        WHERE id = substring(new_ref FROM 5 FOR 16);
        IF NOT FOUND THEN  -- never a reference to a blob that is gone
            RAISE EXCEPTION 'statekeeper: a row refers to a blob that is gone'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    IF substring(old_ref FROM 1 FOR 4) = '\xff534b52'::bytea THEN
        UPDATE sk_blobs SET refs = refs - 1,
            released_at = CASE WHEN refs <= 1 THEN extract(epoch FROM clock_timestamp())
                               ELSE released_at END
        WHERE id = substring(old_ref FROM 5 FOR 16);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sk_blob_ref_sk_state_value_i AFTER INSERT ON sk_state FOR EACH ROW
    WHEN (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_state_value_u AFTER UPDATE OF value ON sk_state FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_state_value_d AFTER DELETE ON sk_state FOR EACH ROW
    WHEN (substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');

CREATE TRIGGER sk_blob_ref_sk_messages_body_i AFTER INSERT ON sk_messages FOR EACH ROW
    WHEN (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_messages_body_u AFTER UPDATE OF body ON sk_messages FOR EACH ROW
    WHEN (NEW.body IS DISTINCT FROM OLD.body AND (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_messages_body_d AFTER DELETE ON sk_messages FOR EACH ROW
    WHEN (substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');

CREATE TRIGGER sk_blob_ref_sk_message_archive_body_i AFTER INSERT ON sk_message_archive FOR EACH ROW
    WHEN (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_u AFTER UPDATE OF body ON sk_message_archive FOR EACH ROW
    WHEN (NEW.body IS DISTINCT FROM OLD.body AND (substring(NEW.body FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('body');
CREATE TRIGGER sk_blob_ref_sk_message_archive_body_d AFTER DELETE ON sk_message_archive FOR EACH ROW
    WHEN (substring(OLD.body FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('body');

CREATE TRIGGER sk_blob_ref_sk_message_archive_result_i AFTER INSERT ON sk_message_archive FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_u AFTER UPDATE OF result ON sk_message_archive FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_message_archive_result_d AFTER DELETE ON sk_message_archive FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_idempotency_result_i AFTER INSERT ON sk_idempotency FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_u AFTER UPDATE OF result ON sk_idempotency FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_idempotency_result_d AFTER DELETE ON sk_idempotency FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_workflows_input_i AFTER INSERT ON sk_workflows FOR EACH ROW
    WHEN (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflows_input_u AFTER UPDATE OF input ON sk_workflows FOR EACH ROW
    WHEN (NEW.input IS DISTINCT FROM OLD.input AND (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflows_input_d AFTER DELETE ON sk_workflows FOR EACH ROW
    WHEN (substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');

CREATE TRIGGER sk_blob_ref_sk_workflows_output_i AFTER INSERT ON sk_workflows FOR EACH ROW
    WHEN (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflows_output_u AFTER UPDATE OF output ON sk_workflows FOR EACH ROW
    WHEN (NEW.output IS DISTINCT FROM OLD.output AND (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflows_output_d AFTER DELETE ON sk_workflows FOR EACH ROW
    WHEN (substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_i AFTER INSERT ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_u AFTER UPDATE OF input ON sk_workflow_steps FOR EACH ROW
    WHEN (NEW.input IS DISTINCT FROM OLD.input AND (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_input_d AFTER DELETE ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');

CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_i AFTER INSERT ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_u AFTER UPDATE OF output ON sk_workflow_steps FOR EACH ROW
    WHEN (NEW.output IS DISTINCT FROM OLD.output AND (substring(NEW.output FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('output');
CREATE TRIGGER sk_blob_ref_sk_workflow_steps_output_d AFTER DELETE ON sk_workflow_steps FOR EACH ROW
    WHEN (substring(OLD.output FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('output');

CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_i AFTER INSERT ON sk_workflow_events FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_u AFTER UPDATE OF data ON sk_workflow_events FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_events_data_d AFTER DELETE ON sk_workflow_events FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_events_data_i AFTER INSERT ON sk_events FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_events_data_u AFTER UPDATE OF data ON sk_events FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_events_data_d AFTER DELETE ON sk_events FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_i AFTER INSERT ON sk_event_snapshots FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_u AFTER UPDATE OF data ON sk_event_snapshots FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_event_snapshots_data_d AFTER DELETE ON sk_event_snapshots FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_i AFTER INSERT ON sk_workflow_messages FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_u AFTER UPDATE OF data ON sk_workflow_messages FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_messages_data_d AFTER DELETE ON sk_workflow_messages FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_i AFTER INSERT ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_u AFTER UPDATE OF data ON sk_workflow_updates FOR EACH ROW
    WHEN (NEW.data IS DISTINCT FROM OLD.data AND (substring(NEW.data FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('data');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_data_d AFTER DELETE ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(OLD.data FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('data');

CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_i AFTER INSERT ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_u AFTER UPDATE OF result ON sk_workflow_updates FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_workflow_updates_result_d AFTER DELETE ON sk_workflow_updates FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_i AFTER INSERT ON sk_workflow_values FOR EACH ROW
    WHEN (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_u AFTER UPDATE OF value ON sk_workflow_values FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_values_value_d AFTER DELETE ON sk_workflow_values FOR EACH ROW
    WHEN (substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');

CREATE TRIGGER sk_blob_ref_sk_schedules_input_i AFTER INSERT ON sk_schedules FOR EACH ROW
    WHEN (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_schedules_input_u AFTER UPDATE OF input ON sk_schedules FOR EACH ROW
    WHEN (NEW.input IS DISTINCT FROM OLD.input AND (substring(NEW.input FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('input');
CREATE TRIGGER sk_blob_ref_sk_schedules_input_d AFTER DELETE ON sk_schedules FOR EACH ROW
    WHEN (substring(OLD.input FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('input');

CREATE TRIGGER sk_blob_ref_sk_entities_state_i AFTER INSERT ON sk_entities FOR EACH ROW
    WHEN (substring(NEW.state FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('state');
CREATE TRIGGER sk_blob_ref_sk_entities_state_u AFTER UPDATE OF state ON sk_entities FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state AND (substring(NEW.state FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.state FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('state');
CREATE TRIGGER sk_blob_ref_sk_entities_state_d AFTER DELETE ON sk_entities FOR EACH ROW
    WHEN (substring(OLD.state FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('state');

CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_i AFTER INSERT ON sk_entity_calls FOR EACH ROW
    WHEN (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_u AFTER UPDATE OF result ON sk_entity_calls FOR EACH ROW
    WHEN (NEW.result IS DISTINCT FROM OLD.result AND (substring(NEW.result FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('result');
CREATE TRIGGER sk_blob_ref_sk_entity_calls_result_d AFTER DELETE ON sk_entity_calls FOR EACH ROW
    WHEN (substring(OLD.result FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('result');

CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_i AFTER INSERT ON sk_workflow_streams FOR EACH ROW
    WHEN (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_u AFTER UPDATE OF value ON sk_workflow_streams FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND (substring(NEW.value FROM 1 FOR 4) = '\xff534b52'::bytea
          OR substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea))
    EXECUTE FUNCTION sk_blob_refs('value');
CREATE TRIGGER sk_blob_ref_sk_workflow_streams_value_d AFTER DELETE ON sk_workflow_streams FOR EACH ROW
    WHEN (substring(OLD.value FROM 1 FOR 4) = '\xff534b52'::bytea)
    EXECUTE FUNCTION sk_blob_refs('value');
