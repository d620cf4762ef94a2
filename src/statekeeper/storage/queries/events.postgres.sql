-- name: ev_append
-- Only appends: sk_events_append in one statement (migration 0012).
SELECT first_position, stream_versions FROM sk_events_append(
    :namespace, :now, :streams::text[], :categories::text[], :expected::int8[],
    :counts::int4[], :ids::text[], :types::text[], :data::bytea[], :metadata::text[],
    :versions::int8[]
);

-- name: commit_events
-- A unit of work with a checkpoint or appends (sk_commit_events, migration 0012).
SELECT cancel_requested, writes, first_position, stream_versions FROM sk_commit_events(
    :namespace, :now,
    :step_id, :fence, :position, :step_kind, :step_name, :step_input::bytea,
    :step_output::bytea, :step_error, :attempts, :started_at, :lease_end,
    :settle, :message_id, :lease_token, :archive, :result::bytea, :error, :retry_at,
    :kinds::text[], :keys::text[], :values::bytea[], :etags::text[], :expires::float8[],
    :key_ids::text[], :if_match::text[], :absent::bool[],
    :m_ids::text[], :m_queues::text[], :m_bodies::bytea[], :m_attributes::text[],
    :m_correlation_ids::text[], :m_groups::text[], :m_available::float8[],
    :m_reply_to::text[],
    :subscription, :sub_token, :checkpoint, :park, :park_attempts,
    :streams::text[], :categories::text[], :expected::int8[], :counts::int4[],
    :ids::text[], :types::text[], :data::bytea[], :metadata::text[], :versions::int8[]
);
