"""Key rotation with the real command: ``statekeeper reencrypt`` run as a process leaves no
value under the old key in any table, resumes where a stopped run left off, and
everything still reads with the old key gone. Every column of the schema that could hold
a payload is either listed as one here or said not to hold one, with why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from statekeeper import App, Keyring
from statekeeper.schedules import Scheduler
from statekeeper.sealing import key_id_of, text_key_id_of
from tests.conftest import FakeClock
from tests.contract.payloads import check_every_payload, drive, write_every_payload
from tests.contract.raw_sql import query

ROOT = Path(__file__).parents[2]
K1, K2 = Keyring.generate_key(), Keyring.generate_key()

# Every stored payload, written out here on purpose (not taken from the code under test):
# (table, column, holds text).
PAYLOADS = [
    ("sk_messages", "body", False),
    ("sk_messages", "attributes", True),
    ("sk_messages", "reply_to", True),
    ("sk_messages", "last_error", True),
    ("sk_message_archive", "body", False),
    ("sk_message_archive", "attributes", True),
    ("sk_message_archive", "reply_to", True),
    ("sk_message_archive", "result", False),
    ("sk_idempotency", "result", False),
    ("sk_workflows", "input", False),
    ("sk_workflows", "output", False),
    ("sk_workflows", "error", True),
    ("sk_workflow_steps", "input", False),
    ("sk_workflow_steps", "output", False),
    ("sk_workflow_steps", "error", True),
    ("sk_workflow_events", "data", False),
    ("sk_events", "data", False),
    ("sk_event_snapshots", "data", False),
    ("sk_workflow_messages", "data", False),
    ("sk_workflow_updates", "data", False),
    ("sk_workflow_updates", "result", False),
    ("sk_workflow_updates", "error", True),
    ("sk_workflow_values", "value", False),
    ("sk_workflow_streams", "value", False),
    ("sk_entities", "state", False),
    ("sk_entity_calls", "result", False),
    ("sk_entity_calls", "error", True),
    ("sk_schedules", "input", False),
    ("sk_blob_chunks", "data", False),
]

# The columns that could hold a payload (BLOB / bytea, or text outside the primary key,
# which is found by its value and so is never sealed: a sealed value differs at every
# write) but hold none sealed, each with why. A column not here nor in PAYLOADS fails
# test_every_column_that_could_hold_a_payload_is_listed: seal it and re-seal it
# (reencrypt.py, storage/reseal_ops.py) or say here why it needs neither.
IDENTIFIER = "an id or name statekeeper finds, groups or orders rows by"
STATUS = "a state, status or kind statekeeper filters on"
LEASE = "who holds a lease, or its token"
NOT_SEALED: dict[tuple[str, str], str] = {
    **{column: IDENTIFIER for column in [
        ("sk_messages", "id"), ("sk_messages", "namespace"), ("sk_messages", "queue"),
        ("sk_messages", "correlation_id"), ("sk_messages", "group_id"),
        ("sk_message_archive", "namespace"), ("sk_message_archive", "queue"),
        ("sk_message_archive", "correlation_id"), ("sk_message_archive", "group_id"),
        ("sk_queue_dedup", "message_id"),
        ("sk_events", "stream"), ("sk_events", "category"), ("sk_events", "id"),
        ("sk_events", "type"), ("sk_event_snapshots", "type"),
        ("sk_workflows", "name"), ("sk_workflows", "parent_id"), ("sk_workflows", "version"),
        ("sk_workflows", "waiting_for"), ("sk_workflow_steps", "name"),
        ("sk_workflow_updates", "name"),
        ("sk_flow_runs", "namespace"), ("sk_flow_runs", "id"), ("sk_flow_runs", "queue"),
        ("sk_flow_runs", "key"), ("sk_flow_runs", "lock"),
        ("sk_schedules", "workflow"), ("sk_schedules", "last_run_id"),
        ("sk_schedules", "buffered"),  # the ids of the runs waiting to start
        ("sk_schedules", "queue"), ("sk_schedules", "queue_key"),  # as sk_flow_runs'
        ("sk_flow_queues", "key_field"),  # a field name of the code's queue declaration
        ("sk_schema_migrations", "name"),
        ("sk_entity_calls", "handler"),
    ]},
    **{column: STATUS for column in [
        ("sk_messages", "state"), ("sk_idempotency", "state"), ("sk_workflows", "status"),
        ("sk_workflow_steps", "kind"), ("sk_workflow_updates", "status"),
        ("sk_flow_runs", "state"), ("sk_workflow_attributes", "kind"),
        ("sk_workflow_attribute_kinds", "kind"), ("sk_workflow_definitions", "kind"),
        ("sk_schedules", "overlap"), ("sk_flow_queues", "start_rule"),
    ]},
    **{column: LEASE for column in [
        ("sk_messages", "lease_token"), ("sk_idempotency", "owner"), ("sk_workflows", "owner"),
        ("sk_subscriptions", "lease_token"), ("sk_subscriptions", "holder"),
        ("sk_entities", "holder"),
    ]},
    ("sk_state", "value"): "sealed without the envelope, its key id in key_id (counted there)",
    ("sk_state", "etag"): "a version tag, compared by If-Match",
    ("sk_state", "key_id"): "the id of the key that sealed the value",
    ("sk_idempotency", "fingerprint"): "a SHA-256 of the request, compared on a repeat",
    ("sk_queue_dedup", "fingerprint"): "a SHA-256 of the message, compared on a repeat",
    ("sk_events", "metadata"): "event metadata (correlation, causation, schema version): "
    "stored readable, not sealed",
    ("sk_subscriptions", "last_error"): "a subscription handler's error: stored readable",
    ("sk_parked_events", "error"): "a subscription handler's error: stored readable",
    ("sk_workflow_attributes", "text_value"): "searchable attributes, readable by design "
    "(docs/workflow-search.md: not encrypted)",
    ("sk_workflow_definitions", "definition"): "a workflow definition (code, not data)",
    ("sk_state_machines", "doc"): "a state machine definition (code, not data)",
    ("sk_schedules", "spec"): "when a schedule fires, read by every scheduler",
    ("sk_blobs", "namespace"): "the namespace a blob belongs to, checked on reading",
    ("sk_uploads", "blob"): "a reference to the file's blob (its chunks are sealed)",
    ("sk_uploads", "start_error"): "why a start failed: an error's code and message",
    ("sk_workflows", "trace"): "a W3C trace context: a trace id and a span id",
    ("sk_uploads", "state"): STATUS, ("sk_uploads", "target_kind"): STATUS,
    ("sk_uploads", "target"): "the workflow or queue an upload goes to (a name)",
    ("sk_uploads", "started"): "the id of the workflow or message an upload started",
    ("sk_uploads", "sha256"): "a checksum the file must have, compared",
    ("sk_uploads", "digest"): "the file's checksum, given to what it starts",
    ("sk_uploads", "content_type"): "the media type the uploader named, served back",
    ("sk_blobs", "store"): "where a blob's chunks are (database or directory)",
}  # fmt: skip


def reencrypt(
    url: str, keys: str, *options: str, namespace: str = "shop"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "STATEKEEPER_ENCRYPTION_KEYS": keys}
    env.pop("STATEKEEPER_DATABASE_URL", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "statekeeper",
            "--database",
            url,
            "--namespace",
            namespace,
            "reencrypt",
            *options,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def key_ids(url: str) -> dict[str | None, int]:
    """How many stored values each key sealed (None: plaintext), read from the rows."""
    counts: dict[str | None, int] = {}
    for table, column, text in PAYLOADS:
        for (value,) in await query(url, f"SELECT {column} FROM {table}"):
            # A reference to a blob seals nothing (its chunks are counted, as blob chunks).
            if value is not None and not (not text and bytes(value).startswith(b"\xffSKR")):
                key = text_key_id_of(value) if text else key_id_of(bytes(value))
                counts[key] = counts.get(key, 0) + 1
    for key_id, value in await query(url, "SELECT key_id, value FROM sk_state"):
        if key_id is not None or not bytes(value).startswith(b"\xffSKR"):  # not a reference
            counts[key_id] = counts.get(key_id, 0) + 1
    return counts


async def payload_columns(url: str) -> dict[tuple[str, str], bool]:
    """Every (table, column) of the schema that could hold a payload (BLOB / bytea, or
    text), and whether it is part of its table's primary key."""
    if url.startswith("sqlite"):
        rows = await query(
            url,
            "SELECT m.name, p.name, p.pk > 0 FROM sqlite_master m, pragma_table_info(m.name) p "
            "WHERE m.type = 'table' AND (upper(p.type) IN ('TEXT', 'BLOB', '') "
            "OR upper(p.type) LIKE '%CHAR%' OR upper(p.type) LIKE '%JSON%')",
        )
    else:
        rows = await query(
            url,
            "SELECT c.table_name, c.column_name, EXISTS ("
            "  SELECT 1 FROM information_schema.table_constraints k"
            "  JOIN information_schema.key_column_usage u"
            "    ON u.constraint_schema = k.constraint_schema"
            "   AND u.constraint_name = k.constraint_name"
            "  WHERE k.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema"
            "    AND k.table_name = c.table_name AND u.column_name = c.column_name) "
            "FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
            "WHERE c.table_schema = current_schema() "
            "AND c.data_type IN ('text', 'bytea', 'character varying', 'character', "
            "'json', 'jsonb', 'ARRAY', 'USER-DEFINED')",
        )
    return {(str(table), str(column)): bool(key) for table, column, key in rows}


async def sealed_columns(url: str, columns: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The columns among ``columns`` holding at least one value in the envelope."""
    found = set()
    for table, column in sorted(columns):
        for (value,) in await query(url, f"SELECT {column} FROM {table}"):
            if isinstance(value, str):
                sealed = text_key_id_of(value) is not None
            else:
                sealed = value is not None and key_id_of(bytes(value)) is not None
            if sealed:
                found.add((table, column))
                break
    return found


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


async def test_rotation_then_reencrypt_leaves_nothing_under_the_old_key(
    own_database_url: str, clock: FakeClock
) -> None:
    url = own_database_url
    async with App(url, namespace="legacy", encryption=None, purge_interval=None) as plain:
        await plain.state.put("before-keys", {"plain": True})
        await plain.queue("legacy").send({"plain": True})
    old = Keyring.parse(f"k1:{K1}")
    async with App(url, namespace="shop", clock=clock, encryption=old, purge_interval=None) as app:
        written = await write_every_payload(app)
    before = await key_ids(url)
    # Every payload column was written, and no other column holds a sealed value.
    payloads = {(table, column) for table, column, _ in PAYLOADS}
    assert await sealed_columns(url, set(await payload_columns(url))) == payloads
    assert before.get(None, 0) >= 2 and before["k1"] >= 40 and "k2" not in before

    rotated = f"k2:{K2},k1:{K1}"
    stopped = report(reencrypt(url, rotated, "--batch-size", "3", "--max-batches", "4"))
    assert stopped["complete"] is False and stopped["batches"] == 4
    assert 0 < stopped["rewritten"] <= 12 and stopped["unreadable"] == 0
    halfway = await key_ids(url)
    assert halfway.get("k2", 0) > 0 and halfway.get("k1", 0) > 0

    finished = report(reencrypt(url, rotated, "--batch-size", "3"))
    assert finished["complete"] is True and finished["unreadable"] == 0
    rows = sum(kind["examined"] for kind in finished["kinds"].values())
    assert finished["rewritten"] == rows  # nothing done twice: only what was left
    assert set(finished["kinds"]) == {
        "state", "messages", "archive", "idempotency", "workflows", "steps", "events",
        "workflow_messages", "workflow_updates", "workflow_values", "workflow_streams",
        "schedules", "stream_events", "snapshots", "entities", "entity_calls", "blob_chunks",
    }  # fmt: skip
    kinds = ("workflow_messages", "workflow_updates", "workflow_values", "workflow_streams",
             "schedules", "blob_chunks")  # fmt: skip
    for kind in kinds:
        assert finished["kinds"][kind]["rewritten"] + stopped["kinds"][kind]["rewritten"] > 0
    after = await key_ids(url)  # the other namespace's plaintext is not ours to seal
    assert after == {"k2": before["k1"], None: before[None]}

    again = report(reencrypt(url, rotated))
    assert again["complete"] is True and again["examined"] == 0 and again["batches"] == 0

    new_only = Keyring.parse(f"k2:{K2}")  # the old key is gone: everything still reads
    async with App(url, namespace="shop", clock=clock, encryption=new_only) as app:
        await check_every_payload(app, written)
        clock.advance(3600)  # and the schedule fires at its time with its input
        assert await Scheduler(app.schedules).run_due() == 1
        run = (await app.schedules.get("payload-schedule")).last_run_id
        assert run is not None and run.startswith("payload-schedule@")
        await drive(app)
        fired = await app.workflows.status(run)
        assert fired.output == {"input": written.markers["schedule-input"]}
    written_since = await key_ids(url)  # the checks' own writes, under k2
    assert set(written_since) == {"k2", None} and written_since[None] == before[None]
    async with App(url, namespace="legacy", encryption=None) as legacy:  # still keyless
        item = await legacy.state.get("before-keys")
        assert item is not None and item.value == {"plain": True}
        [message] = await legacy.queue("legacy").peek()
        assert message.body == {"plain": True}

    everything = report(reencrypt(url, rotated, "--all-namespaces"))  # when asked to
    assert everything["rewritten"] == before[None] and await key_ids(url) == {
        "k2": written_since["k2"] + before[None]
    }
    async with App(url, namespace="legacy", encryption=new_only) as legacy:
        item = await legacy.state.get("before-keys")
        assert item is not None and item.value == {"plain": True}


async def test_every_column_that_could_hold_a_payload_is_listed(own_database_url: str) -> None:
    url = own_database_url
    async with App(url, purge_interval=None):  # the schema, every migration applied
        pass
    columns = await payload_columns(url)
    payloads = {(table, column) for table, column, _ in PAYLOADS}
    assert not payloads & set(NOT_SEALED)
    listed = payloads | set(NOT_SEALED)
    unknown = sorted(c for c, key in columns.items() if not key and c not in listed)
    assert not unknown, (
        f"{unknown} could hold a payload: if sealed, re-seal it (reencrypt.py, "
        "storage/reseal_ops.py) and add it to PAYLOADS; if not, add it to NOT_SEALED with why"
    )
    gone = sorted(listed - set(columns))
    assert not gone, f"{gone} are listed but are no columns of the schema"


async def test_values_that_do_not_open_are_left_and_reported(
    own_database_url: str,
) -> None:
    url = own_database_url
    async with App(url, namespace="other-tenant", encryption=Keyring.parse(f"x:{K1}")) as other:
        await other.queue("jobs").send({"theirs": True})
    async with App(url, namespace="ours", encryption=Keyring.parse(f"k1:{K1}")) as ours:
        await ours.queue("jobs").send({"ours": True})
    ours_only = report(reencrypt(url, f"k2:{K2},k1:{K1}", namespace="ours"))
    assert ours_only["complete"] is True and ours_only["unreadable"] == 0  # theirs untouched
    result = reencrypt(url, f"k2:{K2},k1:{K1}", "--all-namespaces", namespace="ours")
    assert result.returncode == 9, result.stderr
    *logs, error = result.stderr.strip().splitlines()
    assert error.startswith("error: decryption_failed: 1 stored values do not open")
    [warning] = [json.loads(line) for line in logs]  # one line per kind and namespace
    assert warning["message"] == "values not re-sealed: they do not open with the configured keys"
    assert (warning["kind"], warning["namespace"], warning["count"]) == (
        "messages", "other-tenant", 1
    )  # fmt: skip
    assert "'x', which is not configured" in warning["first"]
    document = json.loads(result.stdout)
    assert document["kinds"]["messages"] == {
        "examined": 1, "rewritten": 0, "changed_meanwhile": 0, "unreadable": 1
    }  # fmt: skip
    assert await key_ids(url) == {"x": 1, "k2": 1}


def test_reencrypt_without_keys_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("STATEKEEPER_ENCRYPTION_KEYS", None)
    env.pop("STATEKEEPER_ENCRYPTION_KEYS_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "statekeeper", "--database", f"sqlite:///{tmp_path}/x.db",
         "reencrypt"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 9
    assert result.stderr.strip() == (
        "error: encryption_error: no encryption keys are configured; nothing to re-encrypt with"
    )
