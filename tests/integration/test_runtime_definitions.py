"""A workflow defined by another process after the worker started runs on that worker,
without a restart; workflows a worker registers in code can be started by name from
any process (the worker announces them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from statekeeper import App
from tests.integration.cli_support import Running

FLOWS = """
from statekeeper import App

app = App(purge_interval=None)

@app.function
async def shout(text: str) -> str:
    return text.upper()

@app.workflow
async def greet(ctx, name: str) -> str:
    return "hello " + await ctx.step(shout, name)
"""

LATER = """
from flows import shout

async def double(ctx, n: int) -> int:
    return 2 * n

async def triple(ctx, n: int) -> dict:
    loud = await ctx.step(shout, "three")
    return {"n": 3 * n, "said": loud}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


async def test_a_workflow_defined_after_the_worker_started_runs_there(
    project: Path, own_database_url: str, workers: list[Running]
) -> None:
    db = ["--database", own_database_url, "--namespace", "defs"]
    worker = Running(*db, "worker", "--app", "flows:app", cwd=project)
    workers.append(worker)
    worker.wait_for("statekeeper worker running")
    # Written after the worker started: it is imported when a run needs it.
    (project / "later.py").write_text(LATER)

    async with App(own_database_url, namespace="defs", purge_interval=None) as app:
        # Registered in the worker's code, unknown here: started by the name it announced.
        greeting = await app.workflows.start("greet", "ada", id="g1")
        assert await app.workflows.result(greeting, timeout=20) == "hello ADA"

        assert await app.workflows.define("double", "python", "later:double") == 1
        assert await app.workflows.define("double", "python", "later:double") == 1  # same
        run = await app.workflows.start("double", 21, id="d1")
        assert await app.workflows.result(run, timeout=20) == 42

        # Redefined: a new revision, which runs started from now on use.
        assert await app.workflows.define("double", "python", "later:triple") == 2
        run = await app.workflows.start("double", 5, id="d2")
        assert await app.workflows.result(run, timeout=20) == {"n": 15, "said": "THREE"}
        history = await app.workflows.history("d2")
        assert [(h["kind"], h["name"]) for h in history] == [("step", "shout")]

        # A definition the worker cannot import waits (it is not failed) until it can.
        await app.workflows.define("missing", "python", "nowhere:nothing")
        waiting = await app.workflows.start("missing", None, id="m1")
        worker.wait_for("cannot import 'nowhere:nothing'", timeout=20)
        for _ in range(200):  # given back, due again later (logged just before)
            status = await app.workflows.status(waiting)
            if status.status == "pending":
                break
            await asyncio.sleep(0.05)
        assert status.status == "pending" and status.error is None
    worker.stop()
