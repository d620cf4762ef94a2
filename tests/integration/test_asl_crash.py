"""State machines under SIGKILL, on SQLite and PostgreSQL: 200 executions of a machine
with Task, Choice, Wait, Map and a Catch run on 3 workers, a random one killed every
~0.5 s and started again. Every execution succeeds with the output its input calls
for; every task's effect is applied exactly once (a task running when its worker died
runs again and finds its effect there); a task runs again only after the process that
ran it was killed; and no two tasks of one execution ever run at the same time.

The Task functions and their effects are in asl_crash_app.py.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from statekeeper import App
from statekeeper.asl.workflow import execution_events
from statekeeper.constants import WORKFLOW_ACTIVE
from tests.conftest import pg_url
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import kill_workers_until, small_pool, stop_workers

pytestmark = pytest.mark.crash

TOTAL = 200
WORKER = ["worker", "--app", "asl_crash_app:app"]
EXECUTION = "$$.Execution.Name"
ORDER: dict[str, Any] = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {
            "Type": "Task",
            "Resource": "reserve",
            "Parameters": {"execution.$": EXECUTION, "items.$": "$.items"},
            "ResultPath": "$.reservation",
            "Next": "Express?",
        },
        "Express?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.express", "BooleanEquals": True, "Next": "Pack"}],
            "Default": "Hold",
        },
        "Hold": {"Type": "Wait", "Seconds": 1, "Next": "Pack"},
        "Pack": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {
                "execution.$": EXECUTION,
                "index.$": "$$.Map.Item.Index",
                "item.$": "$$.Map.Item.Value",
            },
            "ItemProcessor": {
                "StartAt": "PackItem",
                "States": {"PackItem": {"Type": "Task", "Resource": "pack", "End": True}},
            },
            "ResultPath": "$.packed",
            "Next": "Charge",
        },
        "Charge": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:charge",
            "Parameters": {
                "execution.$": EXECUTION,
                "total.$": "$.reservation.total",
                "card.$": "$.card",
            },
            "ResultPath": "$.payment",
            "Catch": [
                {"ErrorEquals": ["CardDeclined"], "ResultPath": "$.declined", "Next": "Release"}
            ],
            "Next": "Done",
        },
        "Release": {
            "Type": "Task",
            "Resource": "release",
            "Parameters": {"execution.$": EXECUTION, "reservation.$": "$.reservation.id"},
            "ResultPath": "$.released",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def order(n: int) -> dict[str, Any]:
    """Execution ``n``'s input: 1 to 3 items; every other one express (no Wait); every
    fifth card declined (the Catch, then Release)."""
    items = [{"name": f"item-{n}-{i}", "cost": (n + i) % 7 + 1} for i in range(1 + n % 3)]
    return {"express": n % 2 == 0, "card": "declined" if n % 5 == 0 else "ok", "items": items}


def expected_keys(id: str, given: dict[str, Any]) -> list[str]:
    keys = [f"{id}/Reserve", f"{id}/Charge"]
    keys += [f"{id}/PackItem/{i}" for i in range(len(given["items"]))]
    if given["card"] == "declined":
        keys.append(f"{id}/Release")
    return keys


def expected_output(id: str, given: dict[str, Any], effects: dict[str, Any]) -> dict[str, Any]:
    """What execution ``id`` must give: its input, with what its effects hold (the
    serial numbers of the effects it applied) where the machine put the task results."""
    total = sum(item["cost"] for item in given["items"])
    reservation = effects[f"{id}/Reserve"]
    assert reservation["total"] == total
    output = {**given, "reservation": reservation}
    output["packed"] = [effects[f"{id}/PackItem/{i}"] for i in range(len(given["items"]))]
    for i, item in enumerate(given["items"]):
        assert output["packed"][i].startswith(f"packed {item['name']} #")
    if given["card"] == "declined":
        assert effects[f"{id}/Charge"] == {"declined": total}
        assert effects[f"{id}/Release"].startswith(f"released {reservation['id']} #")
        output["released"] = effects[f"{id}/Release"]
    else:
        assert effects[f"{id}/Charge"]["charged"] == total
        output["payment"] = effects[f"{id}/Charge"]
    return output


def skeleton(event: dict[str, Any]) -> tuple[Any, ...]:
    """An event without what differs from one execution to another."""
    details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
    return (event["id"], event["previousEventId"], event["type"], details.get("name"))


def read_effects(path: Path) -> tuple[dict[str, Any], list[tuple[str, int, int | None]], int]:
    """The effects by key, every run (key, pid, applied) in order, and the overlaps."""
    db = sqlite3.connect(path)
    try:
        effects = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM effects")}
        runs = list(db.execute("SELECT key, pid, applied FROM runs ORDER BY id"))
        overlaps = db.execute("SELECT count(*) FROM overlaps").fetchone()[0]
    finally:
        db.close()
    return effects, runs, overlaps


async def test_200_executions_survive_killed_workers(
    backend_name: str, tmp_path: Path, schema: str, processes: list[Process]
) -> None:
    url = f"sqlite:///{tmp_path}/asl.db" if backend_name == "sqlite" else pg_url(schema)
    effects_path = tmp_path / "effects.db"
    extra = {"ASL_CRASH_URL": small_pool(url), "ASL_CRASH_EFFECTS": str(effects_path)}
    inputs = {f"order-{n}": order(n) for n in range(TOTAL)}
    began = time.monotonic()
    async with App(url, namespace="aslcrash", purge_interval=None) as app:
        await app.workflows.define("order", "asl", ORDER)
        for id, given in inputs.items():
            await app.workflows.start("order", given, id=id)

        async def all_finished() -> bool:
            listed = await app.workflows.list(name="order", limit=1000)
            return len(listed) == TOTAL and not any(
                row["status"] in WORKFLOW_ACTIVE for row in listed
            )

        killed: list[int] = []
        workers, kills = await kill_workers_until(
            schema, processes, all_finished, seed=5, limit=240, extra=extra, worker=WORKER,
            killed=killed,
        )  # fmt: skip
        # 0: a graceful stop. -SIGTERM: the signal came while a just-restarted worker was
        # still importing, before its handler existed (it held nothing yet).
        assert set(stop_workers(workers)) <= {0, -signal.SIGTERM}
        statuses = {id: await app.workflows.status(id) for id in inputs}
        histories = {id: await execution_events(app.workflows, id) for id in inputs}
    elapsed = time.monotonic() - began
    assert kills >= 3, "too few kills to prove anything"
    failed = {id: (s.status, s.error) for id, s in statuses.items() if s.status != "succeeded"}
    assert failed == {}
    effects, runs, overlaps = read_effects(effects_path)
    for id, given in inputs.items():
        output = statuses[id].output
        if given["card"] == "declined":
            declined = output.pop("declined")
            assert declined["Error"] == "CardDeclined"
            assert json.loads(declined["Cause"])["errorMessage"] == (
                f"card declined for {sum(item['cost'] for item in given['items'])}"
            )
        assert output == expected_output(id, given, effects), id

    # Each task's effect exactly once: every key there, none other, none applied twice.
    expected = sorted(key for id, given in inputs.items() for key in expected_keys(id, given))
    assert sorted(effects) == expected
    applied = Counter(key for key, _, done in runs if done)
    assert set(applied.values()) == {1} and sorted(applied) == expected
    assert overlaps == 0, "two tasks of one execution ran at the same time"

    # A resumed execution's history is one run's: executions that took the same path
    # (killed or not) have the same events, numbered 1, 2, 3, ...
    skeletons: dict[tuple[Any, ...], set[tuple[Any, ...]]] = defaultdict(set)
    for id, given in inputs.items():
        events = histories[id]
        assert [e["id"] for e in events] == list(range(1, len(events) + 1)), id
        path = (given["express"], given["card"], len(given["items"]))
        skeletons[path].add(tuple(skeleton(event) for event in events))
    assert {path: len(shapes) for path, shapes in skeletons.items()} == dict.fromkeys(skeletons, 1)

    # A task ran again only after the process that ran it before was killed.
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, pid, _ in runs:
        by_key[key].append(pid)
    rerun = {key: pids for key, pids in by_key.items() if len(pids) > 1}
    assert {key: pids for key, pids in rerun.items() if set(pids[:-1]) - set(killed)} == {}
    found_applied = sum(1 for _, _, done in runs if done == 0)
    print(
        f"\n{backend_name}: {TOTAL} executions, {len(expected)} task effects, {kills} kills "
        f"in {elapsed:.1f} s; {len(runs)} task runs, {len(rerun)} tasks ran more than once "
        f"({len(runs) - len(expected)} extra runs: {found_applied} found their effect "
        f"applied, {len(runs) - len(expected) - found_applied} were killed before it)"
    )
