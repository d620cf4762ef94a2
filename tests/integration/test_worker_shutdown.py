"""Stopping a worker hands its workflows over at once (issue: --grace honoured).

Two ``statekeeper worker`` processes on one PostgreSQL database; a workflow's first
step is in flight on the first when it gets SIGTERM. Within the grace the step
finishes and is checkpointed once, the workflow is given back, and the second worker
runs the next step within 2 s (not after the 30 s lease runs out). With a grace
shorter than the step, the step is interrupted and given back: the second worker
runs it again at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from statekeeper import App
from tests.integration.cli_support import Running

pytestmark = [pytest.mark.crash, pytest.mark.postgres]

FLOWS = """
import asyncio, json, os, time
from statekeeper import App

app = App(purge_interval=None)
LOG = os.environ["SHUTDOWN_LOG"]

def note(event, **fields):
    entry = {"event": event, "pid": os.getpid(), "at": time.time(), **fields}
    with open(LOG, "a") as log:
        log.write(json.dumps(entry) + "\\n")

@app.function
async def slow(seconds: float) -> str:
    note("slow started")
    await asyncio.sleep(seconds)
    note("slow finished")
    return "slow done"

@app.function
async def after(previous: str) -> str:
    note("after started", previous=previous)
    return previous + ", then after"

@app.workflow
async def handover(ctx, seconds: float) -> str:
    first = await ctx.step(slow, seconds)
    return await ctx.step(after, first)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


def events(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def wait_for_event(log: Path, event: str, timeout: float = 30.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = [e for e in events(log) if e["event"] == event]
        if seen:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"no {event!r} in {events(log)}")


async def handover(
    project: Path, url: str, workers: list[Running], *, step: float, grace: str
) -> tuple[list[dict[str, object]], list[str], App]:
    """Start the workflow with a ``step``-second first step on worker A, start worker
    B, SIGTERM A; what the steps logged, A's stderr, and an open app on the database."""
    log = project / "steps.log"
    env = {"SHUTDOWN_LOG": str(log)}
    db = ["--database", url, "--namespace", "handover", "--log-level", "info"]
    first = Running(*db, "worker", "--app", "flows:app", "--grace", grace, cwd=project, env=env)
    workers.append(first)
    first.wait_for("statekeeper worker running")
    app = App(url, namespace="handover", purge_interval=None)
    await app.open()
    await app.workflows.start("handover", step, id="h1")
    wait_for_event(log, "slow started")
    second = Running(*db, "worker", "--app", "flows:app", cwd=project, env=env)
    workers.append(second)
    second.wait_for("statekeeper worker running")
    lines = first.stop()  # SIGTERM; exits 0 (asserted) after the grace at most
    wait_for_event(log, "after started")
    return events(log), lines, app


async def test_sigterm_lets_the_step_finish_and_hands_over_at_once(
    project: Path, fresh_pg_url: str, workers: list[Running]
) -> None:
    seen, lines, app = await handover(project, fresh_pg_url, workers, step=3.0, grace="30")
    try:
        pids = {str(e["event"]): e["pid"] for e in seen}
        started = [e for e in seen if e["event"] == "slow started"]
        finished = [e for e in seen if e["event"] == "slow finished"]
        [after] = [e for e in seen if e["event"] == "after started"]
        # The step ran once, to its end, on the stopping worker ...
        assert len(started) == 1 and len(finished) == 1
        assert finished[0]["pid"] == started[0]["pid"] == pids["slow started"]
        # ... and the other worker went on within 2 s, not after the lease ran out.
        assert after["pid"] != started[0]["pid"]
        assert float(after["at"]) - float(finished[0]["at"]) < 2.0  # type: ignore[arg-type]
        assert after["previous"] == "slow done"
        assert await app.workflows.result("h1", timeout=10) == "slow done, then after"
        history = await app.workflows.history("h1")
        steps = [(h["kind"], h["name"], h["attempts"]) for h in history]
        assert steps == [("step", "slow", 1), ("step", "after", 1)]
        logged = [json.loads(line) for line in lines if line.startswith("{")]
        assert any(entry["message"] == "workflow given back" for entry in logged)
    finally:
        await app.close()


async def test_a_step_past_the_grace_is_given_back_and_run_again_at_once(
    project: Path, fresh_pg_url: str, workers: list[Running]
) -> None:
    stopped_at = time.time()
    seen, lines, app = await handover(project, fresh_pg_url, workers, step=6.0, grace="0.5")
    try:
        started = [e for e in seen if e["event"] == "slow started"]
        finished = [e for e in seen if e["event"] == "slow finished"]
        # Interrupted on the first worker (never finished there), run again on the second.
        assert len(started) == 2 and started[0]["pid"] != started[1]["pid"]
        assert [e["pid"] for e in finished] == [started[1]["pid"]]
        # The second started it again soon after the grace, not after a 30 s lease.
        assert float(started[1]["at"]) - stopped_at < 2.0 + 0.5 + 6.0  # type: ignore[arg-type]
        assert await app.workflows.result("h1", timeout=15) == "slow done, then after"
        logged = [json.loads(line) for line in lines if line.startswith("{")]
        messages = [entry["message"] for entry in logged]
        assert "grace period over: workflow steps in flight interrupted" in messages
        assert "workflow given back" in messages
    finally:
        await app.close()
