"""Query plans, on SQLite and PostgreSQL: every named statement is explained on tables
that hold thousands of rows and were never analyzed (the statistics of an empty table,
as after a spike into a queue autovacuum last saw empty). No statement reads a big table
from end to end, and each statement on one row uses the index that finds that row, so
that cost stays flat however the statistics lag (docs/decisions/0005-flat-cost.md)."""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

import pytest

from statekeeper import App
from statekeeper.storage.queries import Query, load
from statekeeper.storage.runner import IN_ORDER
from statekeeper.storage.state_query import AnyOf, Compare, Position, StateQuery
from statekeeper.storage.state_query_ops import compile_query

BIG = ("sk_messages", "sk_message_archive", "sk_workflows", "sk_workflow_steps", "sk_state",
       "sk_idempotency", "sk_workflow_events", "sk_events", "sk_event_streams",
       "sk_subscriptions", "sk_parked_events", "sk_workflow_attributes",
       "sk_workflow_messages", "sk_workflow_updates", "sk_workflow_values",
       "sk_flow_runs", "sk_schedules", "sk_event_snapshots", "sk_entities",
       "sk_entity_calls", "sk_workflow_streams", "sk_blobs", "sk_blob_chunks",
       "sk_uploads")  # fmt: skip

# Statements that must find their row (or range) through this index (or one of these).
EXPECTED: dict[str, str | tuple[str, ...]] = {
    "queue_receive": "sk_messages_due",
    "queue_next_due": "sk_messages_due",
    "queue_ack": "sk_messages_id_key",
    "queue_ack_delete": "sk_messages_id_key",
    "queue_fail": "sk_messages_id_key",
    "queue_extend": "sk_messages_id_key",
    "queue_release": "sk_messages_id_key",
    "queue_find_live": "sk_messages_id_key",
    "queue_peek_dead": "sk_messages_dead",
    "queue_archived": "sk_message_archive_time",
    "queue_forget_archive": "sk_message_archive_retention",
    "wf_lease": "sk_workflows_due",
    "wf_next_due": "sk_workflows_due",
    "wf_get": "sk_workflows_pkey",
    "wf_renew": "sk_workflows_pkey",
    "wf_checkpoint": "sk_workflows_pkey",
    "wf_checkpoint_renew": "sk_workflows_pkey",
    "wf_suspend": "sk_workflows_pkey",
    "wf_finish": "sk_workflows_pkey",
    "wf_cancel": "sk_workflows_pkey",
    "wf_pause": "sk_workflows_pkey",
    "wf_resume": "sk_workflows_pkey",
    "wf_event_wake": "sk_workflows_pkey",
    "wf_journal": "sk_workflow_steps_pkey",
    "wf_history": "sk_workflow_steps_pkey",
    "wf_runs": "sk_workflow_steps_pkey",
    "wf_list": "sk_workflows_listing",
    "wf_list_by_status": "sk_workflows_by_status",
    "wf_list_by_name": "sk_workflows_by_name",
    "state_get": "sk_state_pkey",
    "trigger_promote": "sk_messages_waiting",
    "idempotency_get": "sk_idempotency_pkey",
    "ev_stream_version": "sk_event_streams_pkey",
    "ev_read_stream": "sk_events_stream",
    "ev_read_stream_back": "sk_events_stream",
    "ev_read_log": "sk_events_pkey",
    "ev_read_log_back": "sk_events_pkey",
    "ev_read_category": "sk_events_category",
    "ev_streams": "sk_event_streams_pkey",
    "sub_lease": "sk_subscriptions_pkey",
    "sub_checkpoint": "sk_subscriptions_pkey",
    "sub_fail": "sk_subscriptions_pkey",
    "sub_parked": "sk_parked_events_pkey",
    "sub_get": "sk_subscriptions_pkey",
    "sub_list": "sk_subscriptions_pkey",
    "es_stream": "sk_events_stream",
    "es_stream_back": "sk_events_stream",
    "es_notifications": "sk_events_pkey",
    # Versions, forks and retention (0015).
    "wf_move_version": "sk_workflows_by_version",
    "wf_move_version_of": "sk_workflows_pkey",
    "wf_expired_mark": "sk_workflows_expiry",
    "wf_expired_runs": "sk_workflows_expiry",
    "wf_expired_steps": "sk_workflows_expiry",
    "wf_expired_events": "sk_workflows_expiry",
    "wf_expired_attributes": "sk_workflows_expiry",
    "wf_expired_messages": "sk_workflows_expiry",
    "wf_expired_updates": "sk_workflows_expiry",
    "wf_expired_values": "sk_workflows_expiry",
    "wf_expired_flow_runs": "sk_workflows_expiry",
    # Workflow search: one attribute's index range drives a filtered listing or count.
    "wf_search_text": "sk_workflow_attributes_text",
    "wf_search_number": "sk_workflow_attributes_number",
    "wf_count_text": "sk_workflow_attributes_text",
    "wf_count_number": "sk_workflow_attributes_number",
    "wf_attr_of": "sk_workflow_attributes_pkey",
    "wf_attr_unset": "sk_workflow_attributes_pkey",
    "wf_attr_purge": "sk_workflow_attributes_pkey",
    "wfm_wake_for_message": "sk_workflows_pkey",
    "wfm_wake_for_update": "sk_workflows_pkey",
    "wfm_lock": "sk_workflows_pkey",
    "wfm_suspend": "sk_workflows_pkey",
    "wfm_insert_message": "sk_workflow_messages_pkey",
    "wfm_next_message": "sk_workflow_messages_pkey",
    "wfm_mailbox_page": "sk_workflow_messages_pkey",
    "wfm_continue_messages": "sk_workflow_messages_pkey",
    "wfm_insert_update": "sk_workflow_updates_pkey",
    "wfm_pending_updates": "sk_workflow_updates_pending",
    "wfm_get_update": "sk_workflow_updates_pkey",
    "wfm_get_value": "sk_workflow_values_pkey",
    "wfm_list_values": "sk_workflow_values_pkey",
    "flow_admit": "sk_flow_runs_waiting",  # SQLite; PostgreSQL's is FLOW_PICK below
    "flow_pick": "sk_flow_runs_waiting",
    "queue_cap_count": "sk_messages_leased",
    "flow_count_admitted": "sk_flow_runs_admitted",
    "flow_key_slot": ("sk_flow_runs_admitted", "sk_flow_runs_key_slot"),
    "flow_count_rate": "sk_flow_runs_rate",
    "flow_release": "sk_flow_runs_pkey",
    "flow_run": "sk_flow_runs_pkey",
    "flow_forget": "sk_flow_runs_pkey",
    "flow_lock_holder": "sk_flow_runs_lock",
    "flow_queue_counts": "sk_flow_runs_waiting",
    "flow_replace_input": "sk_workflows_pkey",
    "sch_claim": "sk_schedules_due",
    "sch_next_due": "sk_schedules_due",
    "sch_get": "sk_schedules_pkey",
    "sch_write": "sk_schedules_pkey",
    "sch_delete": "sk_schedules_pkey",
    "sch_list": "sk_schedules_pkey",
    # Re-sealing (statekeeper reencrypt): each scan walks its table's primary key (the
    # archive: its index by namespace) from its cursor; each compare-and-swap finds its
    # row by the primary key.
    "reseal_scan_state": "sk_state_pkey",
    "reseal_scan_messages": "sk_messages_pkey",
    "reseal_scan_archive": "sk_message_archive_time",
    "reseal_scan_idempotency": "sk_idempotency_pkey",
    "reseal_scan_workflows": "sk_workflows_pkey",
    "reseal_scan_steps": "sk_workflow_steps_pkey",
    "reseal_scan_events": "sk_workflow_events_pkey",
    "reseal_scan_workflow_messages": "sk_workflow_messages_pkey",
    "reseal_scan_workflow_updates": "sk_workflow_updates_pkey",
    "reseal_scan_workflow_values": "sk_workflow_values_pkey",
    "reseal_scan_workflow_streams": "sk_workflow_streams_pkey",
    "wfs_append": "sk_workflow_streams_pkey",
    "wfs_read": "sk_workflow_streams_pkey",
    "wfs_purge": "sk_workflow_streams_pkey",
    "wfs_forget_from": "sk_workflow_streams_pkey",
    "reseal_scan_schedules": "sk_schedules_pkey",
    "reseal_scan_stream_events": "sk_events_pkey",
    "reseal_scan_snapshots": "sk_event_snapshots_pkey",
    # The namespace after another: one probe of any index on every row that begins with
    # namespace (the planner takes the smallest).
    "reseal_next_namespace_state": "sk_state_pkey",
    "reseal_next_namespace_archive": "sk_message_archive_time",
    "reseal_next_namespace_idempotency": "sk_idempotency_pkey",
    "reseal_next_namespace_workflows": (
        "sk_workflows_pkey",
        "sk_workflows_listing",
        "sk_workflows_by_status",
        "sk_workflows_by_name",
    ),
    "reseal_next_namespace_steps": "sk_workflow_steps_pkey",
    "reseal_next_namespace_events": "sk_workflow_events_pkey",
    "reseal_next_namespace_workflow_messages": "sk_workflow_messages_pkey",
    "reseal_next_namespace_workflow_updates": "sk_workflow_updates_pkey",
    "reseal_next_namespace_workflow_values": "sk_workflow_values_pkey",
    "reseal_next_namespace_workflow_streams": "sk_workflow_streams_pkey",
    "reseal_next_namespace_schedules": "sk_schedules_pkey",
    "reseal_next_namespace_stream_events": (
        "sk_events_pkey",
        "sk_events_stream",
        "sk_events_category",
    ),
    "reseal_next_namespace_snapshots": "sk_event_snapshots_pkey",
    "reseal_state_value": "sk_state_pkey",
    "reseal_messages_body": "sk_messages_pkey",
    "reseal_messages_attributes": "sk_messages_pkey",
    "reseal_messages_reply_to": "sk_messages_pkey",
    "reseal_messages_last_error": "sk_messages_pkey",
    "reseal_archive_body": "sk_message_archive_pkey",
    "reseal_archive_result": "sk_message_archive_pkey",
    "reseal_archive_attributes": "sk_message_archive_pkey",
    "reseal_archive_reply_to": "sk_message_archive_pkey",
    "reseal_idempotency_result": "sk_idempotency_pkey",
    "reseal_workflows_input": "sk_workflows_pkey",
    "reseal_workflows_output": "sk_workflows_pkey",
    "reseal_workflows_error": "sk_workflows_pkey",
    "reseal_steps_input": "sk_workflow_steps_pkey",
    "reseal_steps_output": "sk_workflow_steps_pkey",
    "reseal_steps_error": "sk_workflow_steps_pkey",
    "reseal_events_data": "sk_workflow_events_pkey",
    "reseal_workflow_messages_data": "sk_workflow_messages_pkey",
    "reseal_workflow_updates_data": "sk_workflow_updates_pkey",
    "reseal_workflow_updates_result": "sk_workflow_updates_pkey",
    "reseal_workflow_updates_error": "sk_workflow_updates_pkey",
    "reseal_workflow_values_value": "sk_workflow_values_pkey",
    "reseal_workflow_streams_value": "sk_workflow_streams_pkey",
    "reseal_schedules_input": "sk_schedules_pkey",
    # A schedule's run started queued: its place only if its workflow is new.
    "sch_place_run": "sk_workflows_pkey",
    "sch_create_queued_runs": "sk_workflows_pkey",  # PostgreSQL's batch: its conflict arbiter
    "reseal_stream_events_data": "sk_events_pkey",
    "reseal_snapshots_data": "sk_event_snapshots_pkey",
    # Entities (0023 / 0025): one entity's row, its answers.
    "entity_commit": "sk_entities_pkey",
    "entity_commit_answers": "sk_entities_pkey",
    "entity_release": "sk_entities_pkey",
    "entity_get": "sk_entities_pkey",
    "entity_list": "sk_entities_pkey",
    "entity_answers": "sk_entity_calls_pkey",
    "reseal_scan_entities": "sk_entities_pkey",
    "reseal_scan_entity_calls": "sk_entity_calls_pkey",
    "reseal_next_namespace_entities": "sk_entities_pkey",
    "reseal_next_namespace_entity_calls": "sk_entity_calls_pkey",
    "reseal_entities_state": "sk_entities_pkey",
    "reseal_entity_calls_result": "sk_entity_calls_pkey",
    "reseal_entity_calls_error": "sk_entity_calls_pkey",
    # Blobs (0025 / 0027): one blob's row, its chunks; the sweep's unreferenced ones.
    "blob_complete": "sk_blobs_pkey",
    "blob_touch": "sk_blobs_pkey",
    "blob_info": "sk_blobs_pkey",
    "blob_forget": "sk_blobs_pkey",
    "blob_chunks": "sk_blob_chunks_pkey",
    "blob_forget_chunks": "sk_blob_chunks_pkey",
    "blob_unreferenced": "sk_blobs_unreferenced",
    # Uploads (0026 / 0028): one upload; the upkeep's pending, unstarted and started ones.
    "upload_get": "sk_uploads_pkey",
    "upload_complete": "sk_uploads_pkey",
    "upload_started": "sk_uploads_pkey",
    "upload_checked": "sk_uploads_pkey",
    "upload_forget": "sk_uploads_pkey",
    "upload_unstarted": "sk_uploads_unstarted",
    "upload_forget_expired": "sk_uploads_pending",
    "upload_start_failed": ("sk_uploads_pkey", "sk_uploads_unstarted"),
    # /metrics: runs due now (the active runs' counts may scan: see WHOLE).
    "wf_due_summary": "sk_workflows_due",
    # The dashboard's charts: the runs created in the last hour.
    "wf_created_per_minute": "sk_workflows_listing",
    "wf_trace": "sk_workflows_pkey",
    "queue_names_held": ("sk_messages_due", "sk_messages_dead"),
    "upload_forget_failed": "sk_uploads_failed",
    "upload_least_checked": "sk_uploads_checked",
}
# Statements that read rows in the order of the index they walk, never sorting them: a
# batch of a re-seal scan reads from its cursor to its limit, not the rest of its range.
# Listings paged by a cursor (workflows, schedules, subscriptions) too: run in order.
NO_SORT = ("reseal_scan_", "reseal_next_namespace_", "wf_list", "sch_list", "sub_list")
# Statements the adapters run through run_in_order (on PostgreSQL, planned with IN_ORDER):
# explained the same way.
RUN_IN_ORDER = ("reseal_scan_", "wf_list", "sch_list", "sub_list")
# SQLite names primary keys and unique constraints its own way.
SQLITE_NAMES = {
    "sk_messages_pkey": "PRIMARY KEY",
    "sk_messages_id_key": "sqlite_autoindex_sk_messages_1",
    "sk_message_archive_pkey": "sqlite_autoindex_sk_message_archive_1",
    "sk_workflows_pkey": "sqlite_autoindex_sk_workflows_1",
    "sk_workflow_steps_pkey": "sqlite_autoindex_sk_workflow_steps_1",
    "sk_workflow_events_pkey": "sqlite_autoindex_sk_workflow_events_1",
    "sk_state_pkey": "PRIMARY KEY",
    "sk_idempotency_pkey": "PRIMARY KEY",
    "sk_event_streams_pkey": "PRIMARY KEY",
    "sk_events_pkey": "PRIMARY KEY",
    "sk_event_snapshots_pkey": "sqlite_autoindex_sk_event_snapshots_1",
    "sk_subscriptions_pkey": "PRIMARY KEY",
    "sk_parked_events_pkey": "PRIMARY KEY",
    "sk_workflow_attributes_pkey": "sqlite_autoindex_sk_workflow_attributes_1",
    "sk_workflow_messages_pkey": "sqlite_autoindex_sk_workflow_messages_1",
    "sk_workflow_updates_pkey": "sqlite_autoindex_sk_workflow_updates_1",
    "sk_workflow_values_pkey": "sqlite_autoindex_sk_workflow_values_1",
    "sk_workflow_streams_pkey": "PRIMARY KEY",
    "sk_flow_runs_pkey": "sqlite_autoindex_sk_flow_runs_1",
    "sk_schedules_pkey": "sqlite_autoindex_sk_schedules_1",
    "sk_entities_pkey": "PRIMARY KEY",
    "sk_entity_calls_pkey": "PRIMARY KEY",
    "sk_blobs_pkey": "sqlite_autoindex_sk_blobs_1",
    "sk_blob_chunks_pkey": "sqlite_autoindex_sk_blob_chunks_1",
    "sk_uploads_pkey": "sqlite_autoindex_sk_uploads_1",
}
# Statements that read a whole queue (or every namespace) by design: their cost is the
# rows they are asked about, and they are not on a hot path (wf_count: counts by status
# and name read the rows they count; wf_active_counts, for /metrics, the active runs: an
# index range when they are few, a scan when, as here, half the runs are active).
WHOLE = {"queue_stats", "queue_purge_ready", "queue_purge_waiting", "queue_purge_dead",
         "queue_redrive_all", "state_count_sealed", "wf_count", "wf_active_counts",
         "flow_queue_counts"}  # fmt: skip
# Background purges, once a minute: before PostgreSQL first analyzes a table it may read
# it whole to find the expired rows (an index afterwards; a bounded cost either way).
PURGES = {"state_purge_expired", "idempotency_forget", "queue_forget_archive",
          "queue_forget_dedup", "wf_expired_steps", "wf_expired_events",
          "wf_expired_runs", "wf_expired_mark", "wf_expired_attributes", "wf_expired_messages",
          "wf_expired_updates", "wf_expired_values", "wf_expired_streams",
          "wf_expired_flow_runs", "entity_forget", "blob_unreferenced",
          "upload_unstarted", "upload_forget_expired", "upload_least_checked",
          "upload_forget_failed"}  # fmt: skip


NOW = time.time()
# Realistic values: the namespace and queue that hold the rows; ids that exist; times that
# leave most rows out of a purge (what a purge finds on most of its runs).
VALUES: dict[str, Any] = {
    "namespace": "plans", "queue": "jobs", "id": "w7", "key": "k7", "name": "w",
    "status": "running", "event": "e", "lease_token": "t", "owner": "o", "fence": 1,
    "limit": 10, "max_attempts": 5, "position": 1, "attempts": 1, "now": NOW,
    "lease_end": NOW + 30, "retry_at": NOW, "before": NOW - 7 * 86400,
    "after_time": 0.0, "after_id": "", "before_time": float("inf"), "before_id": "",
    "since": 0.0, "until": NOW, "category": "c3",
    # Workflow search: an attribute, its value or range, the other filters (JSON).
    "attr": "customer", "attr_text": "c-7", "number_low": 10.0, "number_high": 10.0,
    "filters_json": json.dumps([{"name": "amount", "text": None, "low": 5.0, "high": None}]),
    # The versions a runner stamps on the runs it first leases, by workflow name.
    "version_map": json.dumps({"w": "code-000000000000"}),
    # A re-seal of one namespace, its cursor inside it; the namespace after another.
    "every_namespace": 0, "after_workflow_id": "w7", "after_queue": "jobs",
    "after_completed_at": NOW - 1500, "after_namespace": "",
    "blob_id": bytes([7, 0]) + bytes(14),  # one of the blobs ``populate`` writes
    "hour_start": NOW + 2900,  # the dashboard's last hour: the newest of the runs
}  # fmt: skip


def sqlite_value(name: str) -> Any:
    """A value for SQLite parameter ``name``."""
    if name in VALUES:
        return VALUES[name]
    if name.endswith("_json"):
        return json.dumps(["w"])
    if name in ("body", "value", "input", "output", "result", "data"):
        return b"{}"
    if name.endswith(("_at", "_set")) or name in ("archive",):
        return NOW if name.endswith("_at") else 1
    return "w"


POSTGRES_VALUES: dict[str, Any] = {
    "text": "w", "bytea": b"{}", "float8": NOW, "int4": 10, "int8": 10,
    "bool": True, "text[]": ["w"], "bytea[]": [b"{}"], "float8[]": [1.0],
    "bool[]": [False], "int4[]": [1], "int8[]": [1],
}  # fmt: skip


def postgres_value(name: str, kind: str) -> Any:
    """A value for PostgreSQL parameter ``name`` of type ``kind``."""
    if name in VALUES and not kind.endswith("[]"):
        return VALUES[name]
    return POSTGRES_VALUES[kind]


class Plan(NamedTuple):
    indexes: set[str]  # the indexes used
    scanned: set[str]  # the tables read from end to end
    sorts: bool  # whether rows are sorted (not read in the order of an index)


def plan_names_postgres(plan: Any) -> Plan:
    """What a PostgreSQL JSON plan reads, and whether it sorts."""
    indexes: set[str] = set()
    scanned: set[str] = set()
    sorts = False

    def walk(node: dict[str, Any]) -> None:
        nonlocal sorts
        if "Index Name" in node:
            indexes.add(node["Index Name"])
        # An INSERT ... ON CONFLICT finds a conflicting row through its arbiter index.
        indexes.update(node.get("Conflict Arbiter Indexes", []))
        if node.get("Node Type") == "Seq Scan":
            scanned.add(node.get("Relation Name", ""))
        sorts = sorts or "Sort" in node.get("Node Type", "")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return Plan(indexes, scanned, sorts)


def plan_names_sqlite(rows: list[Any]) -> Plan:
    indexes: set[str] = set()
    scanned: set[str] = set()
    sorts = False
    for row in rows:
        detail = str(row[3])
        sorts = sorts or detail.startswith("USE TEMP B-TREE FOR")
        if " USING " in detail:
            used = detail.split(" USING ", 1)[1]
            if "PRIMARY KEY" in used or "INTEGER PRIMARY KEY" in used:
                indexes.add("PRIMARY KEY")
            if "INDEX " in used:
                indexes.add(used.split("INDEX ", 1)[1].split(" ", 1)[0])
        elif detail.startswith("SCAN "):
            scanned.add(detail.split()[1])
    return Plan(indexes, scanned, sorts)


async def populate(app: App) -> None:
    q = app.queue("jobs")
    for start in range(0, 4000, 1000):
        await q.send_batch([{"n": n} for n in range(start, start + 1000)])
    await q.send_batch([{"body": n, "group": f"g{n % 5}"} for n in range(200)])
    for message in await q.receive(40):
        await message.fail("no", retryable=False)
    for message in await q.receive(100):
        await message.ack({"ok": True})
    now = time.time()
    workflows = [
        (app.namespace, f"w{n}", "w", "sleeping" if n % 2 else "succeeded", b"0",
         now + 86400 if n % 2 else None, now + n, now, f"v{n % 3}" if n % 2 else None,
         None if n % 2 else now + 86400 + n)
        for n in range(3000)
    ]  # fmt: skip
    steps = [(app.namespace, f"w{n}", p, "step", "s", now) for n in range(1000) for p in range(3)]
    state = [(app.namespace, f"k{n}", b"1", "e") for n in range(3000)]
    idempotency = [(app.namespace, f"i{n}", "f", "done", now + 3600) for n in range(3000)]
    archive = [(f"a{n}", app.namespace, "jobs", b"{}", 1, now, now - n) for n in range(3000)]
    events = [(app.namespace, f"w{n}", "e", b"{}", now) for n in range(3000)]
    logged = [
        (
            app.namespace,
            n + 1,
            f"w-{n % 1000}",
            n // 1000 + 1,
            f"c{n % 10}",
            f"e{n}",
            "t",
            b"{}",
            now,
        )
        for n in range(3000)
    ]
    streams = [(app.namespace, f"w-{n}", 3, now) for n in range(3000)]
    snapshots = [(app.namespace, f"w-{n}", 3, "s", b"{}", now) for n in range(3000)]
    subscriptions = [(app.namespace, f"s{n}", n, now, now) for n in range(3000)]
    parked = [(app.namespace, f"s{n % 30}", n, "e", 1, now) for n in range(3000)]
    attributes = [
        (app.namespace, f"w{n}", name, kind, text, number, now + n, now)
        for n in range(3000)
        for name, kind, text, number in (
            ("customer", "keyword", f"c-{n % 50}", None), ("amount", "int", None, n % 100),
        )
    ]  # fmt: skip
    mailbox = [(app.namespace, f"w{n % 300}", f"t{n % 3}", n, b"1", now) for n in range(3000)]
    asked = [(app.namespace, f"w{n % 300}", n, "u", "accepted" if n % 10 else "pending", now)
             for n in range(3000)]  # fmt: skip
    published = [(app.namespace, f"w{n % 300}", f"k{n}", b"1", now) for n in range(3000)]
    flow_states = ("waiting", "admitted", "done", "done", "done")
    flow = [
        (app.namespace, f"w{n}", "jobs", f"k{n % 50}", n % 3, flow_states[n % 5], now,
         None if n % 5 == 0 else now - n, None, now)
        for n in range(3000)
    ]  # fmt: skip
    schedules = [
        (app.namespace, f"w{n}", "w", b"0", '{"every":60.0}', "skip", 0.0, 60.0,
         now + n, now + n if n % 3 else None, now, now)
        for n in range(3000)
    ]  # fmt: skip
    entities = [(app.namespace, "w", f"k{n}", b"0", n, 0, now) for n in range(3000)]
    answers = [(app.namespace, "w", f"k{n % 30}", f"c{n}", "h", b"0", n, now + 3600 + n)
               for n in range(3000)]  # fmt: skip
    streamed = [(app.namespace, f"w{n % 300}", f"s{n % 3}", n, b"1", 0, n, now)
                for n in range(3000)]  # fmt: skip
    # Blobs: most referenced (refs 1), a few unreferenced ones the sweep finds; 3 chunks each.
    blobs = [(bytes([n % 256, n // 256]) + bytes(14), app.namespace, "db", 3, 3,
              0 if n % 100 == 0 else 1, now - n) for n in range(3000)]  # fmt: skip
    chunks = [(blob[0], seq, b"c") for blob in blobs for seq in range(3)]
    # Uploads: mostly complete and started, some pending, a few complete and not started
    # (due to be tried again over the next hours), a few failed.
    uploads = [(app.namespace, f"w{n}", "pending" if n % 10 == 0 else
                "failed" if n % 100 == 1 else "complete", "workflow",
                "w", 100, now + n, None if n % 10 == 0 else now - n,
                None if n % 10 in (0, 1) else f"w{n}", now - n,
                None if n % 10 != 1 else now + n) for n in range(3000)]  # fmt: skip
    inserts: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("INSERT INTO sk_workflows (namespace, id, name, status, input, wake_at, created_at, "
         "updated_at, version, purge_at) VALUES ({})", workflows),
        ("INSERT INTO sk_workflow_steps (namespace, workflow_id, position, kind, name, "
         "finished_at) VALUES ({})", steps),
        ("INSERT INTO sk_state (namespace, key, value, etag) VALUES ({})", state),
        ("INSERT INTO sk_idempotency (namespace, key, fingerprint, state, expires_at) "
         "VALUES ({})", idempotency),
        ("INSERT INTO sk_message_archive (id, namespace, queue, body, attempts, enqueued_at, "
         "completed_at) VALUES ({})", archive),
        ("INSERT INTO sk_workflow_events (namespace, workflow_id, name, data, received_at) "
         "VALUES ({})", events),
        ("INSERT INTO sk_events (namespace, position, stream, version, category, id, type, "
         "data, recorded_at) VALUES ({})", logged),
        ("INSERT INTO sk_event_streams (namespace, stream, version, updated_at) VALUES ({})",
         streams),
        ("INSERT INTO sk_event_snapshots (namespace, stream, version, type, data, "
         "recorded_at) VALUES ({})", snapshots),
        ("INSERT INTO sk_subscriptions (namespace, name, position, created_at, updated_at) "
         "VALUES ({})", subscriptions),
        ("INSERT INTO sk_parked_events (namespace, subscription, position, error, attempts, "
         "parked_at) VALUES ({})", parked),
        ("INSERT INTO sk_workflow_attributes (namespace, workflow_id, name, kind, text_value, "
         "number_value, created_at, updated_at) VALUES ({})", attributes),
        ("INSERT INTO sk_workflow_messages (namespace, workflow_id, topic, seq, data, sent_at) "
         "VALUES ({})", mailbox),
        ("INSERT INTO sk_workflow_updates (namespace, workflow_id, seq, name, status, "
         "requested_at) VALUES ({})", asked),
        ("INSERT INTO sk_workflow_values (namespace, workflow_id, key, value, updated_at) "
         "VALUES ({})", published),
        ("INSERT INTO sk_flow_runs (namespace, id, queue, key, priority, state, not_before, "
         "admitted_at, lock, created_at) VALUES ({})", flow),
        ("INSERT INTO sk_flow_queues (namespace, name, concurrency, per_key_concurrency, "
         "rate_limit, rate_period, updated_at) VALUES ({})",
         [(app.namespace, "jobs", 4, 1, 50, 1.0, now)]),
        ("INSERT INTO sk_schedules (namespace, id, workflow, input, spec, overlap, jitter, "
         "catchup, next_fire_at, due_at, created_at, updated_at) VALUES ({})", schedules),
        ("INSERT INTO sk_entities (namespace, type, key, state, version, lease_token, "
         "updated_at) VALUES ({})", entities),
        ("INSERT INTO sk_entity_calls (namespace, type, key, call_id, handler, result, "
         "version, expires_at) VALUES ({})", answers),
        ("INSERT INTO sk_workflow_streams (namespace, workflow_id, key, seq, value, "
         "run, position, written_at) VALUES ({})", streamed),
        ("INSERT INTO sk_blobs (id, namespace, store, size, chunks, refs, created_at) "
         "VALUES ({})", blobs),
        ("INSERT INTO sk_blob_chunks (blob_id, seq, data) VALUES ({})", chunks),
        ("INSERT INTO sk_uploads (namespace, id, state, target_kind, target, max_bytes, "
         "expires_at, completed_at, started, created_at, retry_at) VALUES ({})", uploads),
    ]  # fmt: skip
    backend: Any = app.backend
    for sql, rows in inserts:
        width = len(rows[0])
        if backend.dialect == "sqlite":
            statement = sql.format(", ".join("?" * width))
            await backend.writer.run(lambda c, s=statement, r=rows: c.executemany(s, r), "fill")
        else:
            statement = sql.format(", ".join(f"${i}" for i in range(1, width + 1)))
            async with backend.pool.acquire() as conn:
                await conn.executemany(statement, rows)


async def explain(app: App, query: Query, bound: tuple[Any, ...] | None = None) -> Plan:
    """The plan of ``query``: its parameters given realistic values, or ``bound``."""
    backend: Any = app.backend
    if bound is not None:
        return await explain_bound(app, query.sql, bound)
    if backend.dialect == "sqlite":
        args = query.args(**{p: sqlite_value(p) for p in query.params})
        rows = await backend.writer.run(
            lambda c: c.execute("EXPLAIN QUERY PLAN " + query.sql, args).fetchall(), "explain"
        )
        return plan_names_sqlite(rows)
    async with backend.pool.acquire() as conn, conn.transaction():
        if query.name.startswith(RUN_IN_ORDER):
            await conn.execute(IN_ORDER)
        prepared = await conn.prepare("EXPLAIN (FORMAT JSON) " + query.sql)
        kinds = [t.name for t in prepared.get_parameters()]
        values = [postgres_value(n, k) for n, k in zip(query.params, kinds, strict=True)]
        plan = await prepared.fetchval(*values)
    return plan_names_postgres(json.loads(plan))


async def explain_bound(app: App, sql: str, args: tuple[Any, ...]) -> Plan:
    backend: Any = app.backend
    if backend.dialect == "sqlite":
        rows = await backend.writer.run(
            lambda c: c.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall(), "explain"
        )
        return plan_names_sqlite(rows)
    async with backend.pool.acquire() as conn:
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    return plan_names_postgres(json.loads(plan))


@pytest.fixture
async def filled(own_database_url: str) -> Any:
    async with App(own_database_url, namespace="plans", purge_interval=None) as app:
        backend: Any = app.backend
        if backend.dialect == "postgres":  # nothing analyzes behind the test's back
            async with backend.pool.acquire() as conn:
                for (table,) in await conn.fetch(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                    "AND c.relkind = 'r'"
                ):
                    await conn.execute(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)')
        await populate(app)
        yield app


# The statement the group triggers run when a group's head leaves (not a named query).
PROMOTE = Query(
    "trigger_promote",
    "SELECT seq FROM sk_messages WHERE namespace = 'plans' AND queue = 'jobs' "
    "AND group_id = 'g1' AND state = 'waiting' ORDER BY seq LIMIT 1",
    (),
)


# The statements the PostgreSQL function sk_flow_admit runs (schema/postgres.sql), its
# variables written as the values they hold (not named queries: a function's own).
FLOW_PICK = Query(
    "flow_pick",
    f"SELECT r.id, r.key FROM sk_flow_runs r WHERE r.namespace = 'plans' AND r.queue = 'jobs' "
    f"AND r.state = 'waiting' AND r.not_before <= {NOW} AND r.id <> ALL('{{}}'::text[]) "
    "AND (SELECT w.cancel_requested FROM sk_workflows w WHERE w.namespace = 'plans' "
    "AND w.id = r.id) = 0 "
    "AND (r.key IS NULL OR (SELECT count(*) FROM sk_flow_runs k WHERE k.namespace = 'plans' "
    "AND k.queue = 'jobs' AND k.key = r.key AND k.state = 'admitted') < 1) "
    "AND (r.key IS NULL OR (SELECT count(*) FROM sk_flow_runs k WHERE k.namespace = 'plans' "
    "AND k.queue = 'jobs' AND k.key = r.key AND k.admitted_at IS NOT NULL "
    f"AND k.admitted_at > {NOW - 1}) < 5) "
    "ORDER BY r.priority DESC, r.seq LIMIT 1",
    (),
)
# The count the PostgreSQL function sk_queue_cap makes for a receive of a queue with a
# concurrency limit (on SQLite it is part of queue_receive).
QUEUE_CAP = Query(
    "queue_cap_count",
    "SELECT count(*) FROM sk_messages WHERE namespace = 'plans' AND queue = 'jobs' "
    f"AND state = 'leased' AND available_at > {NOW}",
    (),
)
FLOW_COUNTS = (
    Query(
        "flow_count_admitted",
        "SELECT count(*) FROM sk_flow_runs a WHERE a.namespace = 'plans' AND a.queue = 'jobs' "
        "AND a.state = 'admitted'",
        (),
    ),
    Query(
        "flow_key_slot",
        "SELECT s FROM generate_series(1, 2 - (SELECT count(*) FROM sk_flow_runs o "
        "WHERE o.namespace = 'plans' AND o.queue = 'jobs' AND o.key = 'k1' "
        "AND o.state = 'admitted' AND (o.key_slot IS NULL OR o.key_slot > 2))) AS s "
        "WHERE NOT EXISTS (SELECT 1 FROM sk_flow_runs k "
        "WHERE k.namespace = 'plans' AND k.queue = 'jobs' AND k.key = 'k1' "
        "AND k.state = 'admitted' AND k.key_slot = s) ORDER BY s LIMIT 1",
        (),
    ),
    Query(
        "flow_count_rate",
        "SELECT count(*) FROM sk_flow_runs a WHERE a.namespace = 'plans' AND a.queue = 'jobs' "
        f"AND a.admitted_at IS NOT NULL AND a.admitted_at > {NOW - 1}",
        (),
    ),
)


async def check_plans(app: App, *, analyzed: bool) -> list[str]:
    """What is wrong with the plans of every named statement (nothing, we hope)."""
    dialect = app.backend.dialect
    allowed = WHOLE if analyzed else WHOLE | PURGES
    problems = []
    statements = {**load(dialect), PROMOTE.name: PROMOTE}
    if dialect == "postgres":
        statements.update({q.name: q for q in (FLOW_PICK, *FLOW_COUNTS, QUEUE_CAP)})
    for name, query in sorted(statements.items()):
        indexes, scanned, sorts = await explain(app, query)
        full = scanned & set(BIG)
        if full and name not in allowed:
            problems.append(f"{name} reads {sorted(full)} from end to end")
        if sorts and name.startswith(NO_SORT):
            problems.append(f"{name} sorts its rows (through {sorted(indexes)})")
        expected = EXPECTED.get(name)
        if name == "flow_admit" and dialect == "postgres":
            expected = None  # a call of sk_flow_admit: its statements are FLOW_PICK and _COUNTS
        if expected is not None:
            wanted = (expected,) if isinstance(expected, str) else expected
            if dialect == "sqlite":
                wanted = tuple(SQLITE_NAMES.get(index, index) for index in wanted)
            if not indexes & set(wanted):
                problems.append(f"{name} uses {sorted(indexes)}, not {' or '.join(wanted)}")
    return problems


async def test_every_statement_finds_its_rows_through_an_index(filled: App) -> None:
    app = filled
    if app.backend.dialect == "postgres":  # the hazard: statistics never gathered
        backend: Any = app.backend
        async with backend.pool.acquire() as conn:
            analyzed = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'sk_messages' "
                "AND schemaname = current_schema() "
                "AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
            )
        assert analyzed == 0
    assert await check_plans(app, analyzed=False) == []


async def test_the_plans_hold_with_statistics_too(filled: App) -> None:
    app = filled
    backend: Any = app.backend
    if app.backend.dialect == "sqlite":
        await backend.writer.run(lambda c: c.execute("ANALYZE"), "analyze")
    else:
        async with backend.pool.acquire() as conn:  # this schema's (a bare ANALYZE would
            for (table,) in await conn.fetch(  # reach another test's never-analyzed tables)
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema()"
            ):
                await conn.execute(f'ANALYZE "{table}"')
    assert await check_plans(app, analyzed=True) == []


async def test_listing_timed_out_workflows_reads_the_status_index(filled: App) -> None:
    """``list --status timed_out`` (a status most rows do not have) is a range of
    sk_workflows_by_status, before and after statistics."""
    app = filled
    backend: Any = app.backend
    query = load(app.backend.dialect)["wf_list_by_status"]
    wanted = "sk_workflows_by_status"
    VALUES["status"], kept = "timed_out", VALUES["status"]
    try:
        for analyze in (False, True):
            if analyze and backend.dialect == "sqlite":
                await backend.writer.run(lambda c: c.execute("ANALYZE"), "analyze")
            elif analyze:
                async with backend.pool.acquire() as conn:
                    await conn.execute("ANALYZE")
            indexes, scanned, _ = await explain(app, query)
            assert wanted in indexes and not scanned & set(BIG), (indexes, scanned)
    finally:
        VALUES["status"] = kept


# State queries (the sidecar's query API) are put together per query (state_query_ops):
# a page without a sort reads this app's key range in key order through the primary key
# and stops when the page is full; a later page starts at the token's key. (A sorted
# query reads the app's whole range by design: docs/sidecar.md, Query.)
PAGED_QUERIES = {
    "no filter": StateQuery(limit=101),
    "filter": StateQuery(Compare("EQ", ("state",), "CA"), limit=101),
    "next page": StateQuery(AnyOf(("n",), (1, "x")), limit=101, after=Position("k1500")),
}


@pytest.mark.parametrize("analyze", [False, True], ids=["unanalyzed", "analyzed"])
async def test_state_query_pages_read_the_key_range_through_the_primary_key(
    filled: App, analyze: bool
) -> None:
    app = filled
    backend: Any = app.backend
    if analyze and backend.dialect == "sqlite":
        await backend.writer.run(lambda c: c.execute("ANALYZE"), "analyze")
    elif analyze:
        async with backend.pool.acquire() as conn:
            await conn.execute("ANALYZE")
    wanted = SQLITE_NAMES["sk_state_pkey"] if backend.dialect == "sqlite" else "sk_state_pkey"
    for name, query in PAGED_QUERIES.items():
        sql, args = compile_query(backend.dialect, "plans", "k1", "k2", query, NOW)
        indexes, scanned, _ = await explain(app, Query(name, sql, ()), args)
        assert wanted in indexes and "sk_state" not in scanned, (name, indexes, scanned)
