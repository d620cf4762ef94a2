"""What the inspection commands print, as real processes on SQLite and PostgreSQL: one
JSON document with --json on every one of them, ISO-8601 UTC times, whole ids that
paste into other commands, stored control characters escaped, one-line usage errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from statekeeper import App, Retry
from tests.conftest import FakeClock
from tests.integration.cli_support import document, one_line_error, statekeeper
from tests.support import run_until

PAST = 1_700_000_000.0  # a fake clock's start, before the real clock: work made then is due
START = "2023-11-14T22:13:20+00:00"


def utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), text
    return when


def worker_finished(worker: Any) -> bool:
    return bool(worker.workflow_runner and worker.workflow_runner.completed)


def times_in(value: Any) -> list[str]:
    """Every value under a key ending in ``_at`` (the inspection commands' times)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_at") and item is not None:
                found.append(item)
            found += times_in(item)
    elif isinstance(value, list):
        for item in value:
            found += times_in(item)
    return found


async def test_every_inspect_command_prints_one_json_document(own_database_url: str) -> None:

    clock = FakeClock(PAST)
    async with App(own_database_url, namespace="shown", clock=clock, purge_interval=None) as app:
        await app.state.put("user:1", {"name": "Ada"}, ttl=100_000_000)
        await app.queue("jobs").send({"n": 1})

        async def double(n: int) -> int:
            return n * 2

        @app.workflow
        async def doubler(ctx: Any, n: int) -> int:
            return int(await ctx.step(double, n))

        await app.workflows.start("doubler", 21, id="d1")
    # The workflow runs on the real clock; its creation time stays the fake one.
    async with App(own_database_url, namespace="shown", purge_interval=None) as app:
        app.workflow(doubler)
        worker = app.worker(poll=0.05)
        await run_until(worker, lambda: worker_finished(worker))

    db = ["--database", own_database_url, "--namespace", "shown"]
    commands = {
        "state get": ["state", "get", "user:1"],
        "state list": ["state", "list"],
        "queue stats": ["queue", "stats", "jobs"],
        "queue peek": ["queue", "peek", "jobs"],
        "workflows list": ["workflows", "list"],
        "workflows describe": ["workflows", "describe", "d1"],
        "workflows history": ["workflows", "history", "d1"],
        "workflows result": ["workflows", "result", "d1"],
    }
    shown = {what: document(statekeeper(*db, *args, "--json")) for what, args in commands.items()}
    assert shown["state get"]["value"] == {"name": "Ada"}
    assert shown["state get"]["expires_at"] == "2027-01-15T08:00:00+00:00"
    assert [i["key"] for i in shown["state list"]["items"]] == ["user:1"]
    assert shown["state list"]["cursor"] is None
    assert shown["queue stats"]["ready"] == 1
    [message] = shown["queue peek"]["items"]
    assert message["body"] == {"n": 1} and message["enqueued_at"] == START
    [listed] = shown["workflows list"]["items"]
    assert listed["id"] == "d1" and listed["created_at"] == START
    assert shown["workflows describe"]["output"] == 42
    [step] = shown["workflows history"]["items"]
    assert step["kind"] == "step" and step["output"] == 42
    assert shown["workflows result"]["output"] == 42
    every_time = times_in(list(shown.values()))
    assert len(every_time) >= 10
    for text in every_time:
        utc(text)
    # Without --json: text, with the same times, and the result as its JSON value.
    described = statekeeper(*db, "workflows", "describe", "d1").stdout.splitlines()
    assert f"created_at  {START}" in described
    assert document(statekeeper(*db, "workflows", "result", "d1")) == 42
    state = statekeeper(*db, "state", "get", "user:1").stdout.splitlines()
    assert state[1] == 'value       {"name": "Ada"}'


async def test_peeked_ids_paste_into_redrive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/peek.db"
    async with App(url, namespace="jobs", purge_interval=None) as app:
        queue = app.queue("jobs", retry=Retry(max_attempts=1))
        await queue.send_batch([{"n": n, "padding": "x" * 200} for n in range(3)])
        for message in await queue.receive(3):
            await message.fail("boom\n\x1b[2J cleared the screen", retryable=False)
    db = ["--database", url, "--namespace", "jobs"]
    # A narrow terminal does not cut ids short.
    table = statekeeper(*db, "queue", "peek", "jobs", "--dead", env={"COLUMNS": "40"})
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:2] == ["ID", "STATE"]
    ids = [row.split()[0] for row in rows]
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)
    assert "\x1b" not in table.stdout and "boom\\n\\x1b[2J" in table.stdout
    redriven = statekeeper(*db, "queue", "redrive", "jobs", "--id", ids[0], "--id", ids[1])
    assert document(redriven) == {"queue": "jobs", "redriven": 2}
    left = document(statekeeper(*db, "queue", "peek", "jobs", "--dead", "--json"))["items"]
    assert [m["id"] for m in left] == ids[2:]


def test_stored_control_and_format_characters_are_escaped(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/keys.db"]
    key = "k\u202edesrever\u009b31m"  # right-to-left override; C1 control sequence introducer
    assert statekeeper(*db, "state", "put", key, '"v"').returncode == 0
    listed = statekeeper(*db, "state", "list")
    assert "k\\u202edesrever\\x9b31m" in listed.stdout
    assert "\u202e" not in listed.stdout and "\u009b" not in listed.stdout
    assert document(statekeeper(*db, "state", "list", "--json"))["items"][0]["key"] == key


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/usage.db"]
    for args, fragment in [
        (["state", "get"], "Missing argument 'KEY'"),
        (["state", "list", "--bogus"], "--bogus"),
        (["state", "list", "--limit", "x"], "'x' is not a valid integer"),
        (["nope"], "No such command 'nope'"),
        (["queue", "replay", "jobs", "--since", "yesterday"], "neither an ISO-8601 time"),
        (["worker", "--grace", "-5"], "--grace"),
    ]:
        line = one_line_error(statekeeper(*db, *args), "usage", 2)
        assert fragment in line and "--help" in line, line
    help_text = statekeeper("workflows", "start", "--help")
    assert help_text.returncode == 0 and "--input JSON" in help_text.stdout


async def test_replay_takes_iso_times(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/replay.db"
    clock = FakeClock()
    async with App(url, namespace="jobs", clock=clock, purge_interval=None) as app:
        queue = app.queue("jobs", archive=True)
        await queue.send_batch(["a", "b"])
        for message in await queue.receive(2):
            await message.ack()
    db = ["--database", url, "--namespace", "jobs"]
    none = statekeeper(*db, "queue", "replay", "jobs", "--since", "2027-01-15T08:00:01Z")
    assert document(none) == {"queue": "jobs", "replayed": 0}
    both = statekeeper(*db, "queue", "replay", "jobs", "--since", "2027-01-15T09:00:00+01:00",
                       "--until", "1800000001")  # fmt: skip
    assert document(both) == {"queue": "jobs", "replayed": 2}
