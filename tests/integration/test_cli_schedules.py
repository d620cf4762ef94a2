"""The schedule verbs as real processes, on SQLite and PostgreSQL: a schedule declared in
code (``@app.schedule``) created by a worker at start and fired by its scheduler; create,
list, get, next, pause, resume, trigger, backfill, update and delete; schedules into a
workflow queue; one-line errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_support import Running, document, one_line_error, statekeeper

FLOWS = """
from statekeeper import App

app = App(namespace="timed", purge_interval=None)
app.workflow_queue("reports", concurrency=1)


@app.schedule(every=1, id="tick", overlap="allow_all", input={"from": "code"})
@app.workflow
async def note(ctx, input):
    return input


@app.schedule(every=1, id="queued-tick", overlap="allow_all", queue="reports", key="code",
              priority=2)
@app.workflow
async def report(ctx, input):
    return input
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


@pytest.fixture
def workers() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for worker in started:
        worker.kill()


def test_schedule_verbs(project: Path, own_database_url: str, workers: list[Running]) -> None:
    db = ["--database", own_database_url, "--namespace", "timed"]

    def sk(*args: str) -> object:
        return document(statekeeper(*db, "schedules", *args, cwd=project))

    worker = Running(*db, "worker", "--app", "flows:app", cwd=project)
    workers.append(worker)
    worker.wait_for("statekeeper worker running")
    deadline = time.monotonic() + 20
    while True:  # the declared schedule fires every second
        ran = document(statekeeper(*db, "workflows", "list", "--json", cwd=project))["items"]
        queued = [w for w in ran if w["id"].startswith("queued-tick@")]
        if len([w for w in ran if w["id"].startswith("tick@")]) >= 2 and any(
            w["status"] == "succeeded" for w in queued
        ):
            break
        assert time.monotonic() < deadline, ran
        time.sleep(0.2)
    listed = sk("list", "--json")
    assert [s["id"] for s in listed["items"]] == ["queued-tick", "tick"]  # type: ignore[index]
    declared = sk("get", "queued-tick", "--json")
    assert (declared["queue"], declared["key"], declared["priority"]) == (  # type: ignore[index]
        "reports", "code", 2,
    )  # fmt: skip
    tick = sk("get", "tick", "--json")
    assert tick["input"] == {"from": "code"} and tick["spec"]["every"] == 1.0  # type: ignore[index]
    paused = sk("pause", "tick", "--json")
    assert paused["paused"] is True  # type: ignore[index]
    nxt = sk("next", "tick", "--count", "3", "--json")
    first, second, third = nxt["fire_times"]  # type: ignore[index]
    assert second - first == 1.0 and third - second == 1.0
    assert sk("resume", "tick", "--json")["paused"] is False  # type: ignore[index]

    made = sk("create", "daily", "note", "--cron", "0 6 * * *", "--timezone", "Europe/Berlin",
              "--input", '{"n": 1}', "--overlap", "allow_all", "--json")  # fmt: skip
    assert made["spec"] == {"cron": "0 6 * * *", "timezone": "Europe/Berlin"}  # type: ignore[index]
    assert made["next_fire_at_iso"].endswith("+00:00")  # type: ignore[index]
    triggered = sk("trigger", "daily")
    assert triggered["run_id"].startswith("daily@manual-")  # type: ignore[index]
    filled = sk("backfill", "daily", "--start", "2026-01-01T00:00:00Z",
                "--end", "2026-01-03T00:00:00Z")  # fmt: skip
    assert filled["run_ids"] == [  # type: ignore[index]
        "daily@20260101T050000Z", "daily@20260102T050000Z",
    ]  # fmt: skip
    changed = sk("update", "daily", "note", "--every", "3600", "--json")
    assert changed["spec"]["every"] == 3600.0 and changed["overlap"] == "skip"  # type: ignore[index]
    assert sk("delete", "daily") == {"id": "daily", "deleted": True}

    weekly = sk("create", "weekly", "note", "--every", "3600", "--queue", "reports",
                "--key", "t-1", "--priority", "5", "--json")  # fmt: skip
    assert (weekly["queue"], weekly["key"], weekly["priority"]) == (  # type: ignore[index]
        "reports", "t-1", 5,
    )  # fmt: skip
    changed = sk("update", "weekly", "note", "--every", "3600", "--queue", "reports",
                 "--priority", "-1", "--json")  # fmt: skip
    assert (changed["queue"], changed["key"], changed["priority"]) == (  # type: ignore[index]
        "reports", None, -1,
    )  # fmt: skip
    shown = statekeeper(*db, "schedules", "get", "weekly", cwd=project).stdout
    assert "reports" in shown and "priority" in shown
    run = sk("trigger", "weekly")["run_id"]  # type: ignore[index]
    deadline = time.monotonic() + 20
    while True:  # the worker's queue admits and runs it
        got = document(statekeeper(*db, "workflows", "describe", run, "--json", cwd=project))
        if got["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
    text = statekeeper(*db, "schedules", "list", cwd=project)
    assert text.returncode == 0 and "tick" in text.stdout and "daily" not in text.stdout

    one_line_error(statekeeper(*db, "schedules", "get", "daily", cwd=project),
                   "schedule_not_found", 6)  # fmt: skip
    one_line_error(statekeeper(*db, "schedules", "create", "x", "note", "--cron", "* *",
                               cwd=project), "invalid_schedule", 4)  # fmt: skip
    one_line_error(statekeeper(*db, "schedules", "create", "x", "note", "--every", "5",
                               "--at", "1", cwd=project), "invalid_schedule", 4)  # fmt: skip
    one_line_error(statekeeper(*db, "schedules", "create", "tick", "note", "--every", "5",
                               cwd=project), "schedule_exists", 5)  # fmt: skip
    one_line_error(statekeeper(*db, "schedules", "create", "y", "nothing", "--every", "5",
                               cwd=project), "unknown_workflow", 6)  # fmt: skip
    bad = statekeeper(*db, "schedules", "create", "z", "note", "--every", "abc", cwd=project)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    for args, code, exit_code in (
        (["--queue", "nowhere"], "unknown_flow_queue", 6),
        (["--queue", "a b"], "invalid_schedule", 4),
        (["--queue", "reports", "--key", ""], "invalid_schedule", 4),
        (["--queue", "reports", "--priority", "5000000"], "invalid_schedule", 4),
        (["--key", "k"], "invalid_schedule", 4),
        (["--priority", "3"], "invalid_schedule", 4),
    ):
        one_line_error(statekeeper(*db, "schedules", "create", "z", "note", "--every", "5",
                                   *args, cwd=project), code, exit_code)  # fmt: skip
    bad = statekeeper(*db, "schedules", "update", "weekly", "note", "--every", "5",
                      "--priority", "high", cwd=project)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert sk("get", "weekly", "--json")["priority"] == -1  # type: ignore[index]
    worker.stop()
