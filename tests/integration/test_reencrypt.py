"""Key rotation with the real command: ``statekeeper reencrypt`` run as a process leaves no
value under the old key in any table, resumes where a stopped run left off, and
everything still reads with the old key gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from statekeeper import App, Keyring
from statekeeper.sealing import key_id_of, text_key_id_of
from tests.conftest import FakeClock
from tests.contract.payloads import check_every_payload, write_every_payload
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
]


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
            if value is not None:
                key = text_key_id_of(value) if text else key_id_of(bytes(value))
                counts[key] = counts.get(key, 0) + 1
    for (key_id,) in await query(url, "SELECT key_id FROM sk_state"):
        counts[key_id] = counts.get(key_id, 0) + 1
    return counts


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
        "workflow_messages", "workflow_updates", "workflow_values", "schedules",
        "stream_events", "snapshots",
    }  # fmt: skip
    after = await key_ids(url)  # the other namespace's plaintext is not ours to seal
    assert after == {"k2": before["k1"], None: before[None]}

    again = report(reencrypt(url, rotated))
    assert again["complete"] is True and again["examined"] == 0 and again["batches"] == 0

    new_only = Keyring.parse(f"k2:{K2}")  # the old key is gone: everything still reads
    async with App(url, namespace="shop", clock=clock, encryption=new_only) as app:
        await check_every_payload(app, written)
    async with App(url, namespace="legacy", encryption=None) as legacy:  # still keyless
        item = await legacy.state.get("before-keys")
        assert item is not None and item.value == {"plain": True}
        [message] = await legacy.queue("legacy").peek()
        assert message.body == {"plain": True}

    everything = report(reencrypt(url, rotated, "--all-namespaces"))  # when asked to
    assert everything["rewritten"] == before[None] and await key_ids(url) == {
        "k2": sum(before.values())
    }
    async with App(url, namespace="legacy", encryption=new_only) as legacy:
        item = await legacy.state.get("before-keys")
        assert item is not None and item.value == {"plain": True}


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
