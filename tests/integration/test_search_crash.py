"""Searchable attributes under SIGKILL: 40 workflows set attributes 8 times each (a
0.75 s step between), over 3 PostgreSQL workers with one killed every ~2 s. An attribute
is written with its journal entry in one transaction, so no value is lost and no
replay writes an older value back: sampled while the workers die, each workflow's
``round`` never goes down, and at the end every workflow holds its last values and
journaled exactly 8 settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import WORKER, kill_workers_until, stop_workers

pytestmark = pytest.mark.crash

TOTAL = 80
ROUNDS = 8
SEARCH_WORKER = [*WORKER[:-1], "search_crash_app:app"]


@pytest.fixture
async def flows(schema: str) -> AsyncIterator[App]:
    app = App(f"{pg_dsn()}?schema={schema}", namespace="crash", purge_interval=None)

    @app.workflow
    async def labelled(ctx: object, _: object) -> int:  # the name the workers run
        raise AssertionError("runs only in the worker processes")

    async with app:
        yield app


async def test_attributes_survive_killed_workers_and_never_go_back(
    flows: App, schema: str, processes: list[Process]
) -> None:
    app = flows
    ids = [f"l-{n:02d}" for n in range(TOTAL)]
    for workflow_id in ids:
        await app.workflows.start("labelled", None, id=workflow_id)
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    highest: dict[str, float] = {}
    went_back: list[tuple[str, float, float]] = []

    async def finished() -> bool:
        # A sample every ~2 s (and so a kill): a worker takes seconds to start on a
        # loaded machine, and must live long enough to run some rounds.
        await asyncio.sleep(1.5)
        for workflow_id, value in await conn.fetch(
            "SELECT workflow_id, number_value FROM sk_workflow_attributes WHERE name = 'round'"
        ):
            if value < highest.get(workflow_id, -1):
                went_back.append((workflow_id, highest[workflow_id], value))
            highest[workflow_id] = max(value, highest.get(workflow_id, -1))
        done = await conn.fetchval("SELECT count(*) FROM sk_workflows WHERE status = 'succeeded'")
        return int(done) >= TOTAL

    try:
        workers, kills = await kill_workers_until(
            schema, processes, finished, seed=12, limit=50, worker=SEARCH_WORKER
        )
        stop_workers(workers)
    finally:
        await conn.close()
    assert kills >= 3, "too few kills to prove anything"
    assert went_back == []
    assert {(await app.workflows.status(i)).status for i in ids} == {"succeeded"}
    for workflow_id in ids:
        assert await app.workflows.attributes(workflow_id) == {"round": 7, "phase": "p7"}
        kinds = [e["kind"] for e in await app.workflows.history(workflow_id)]
        assert kinds.count("attributes") == ROUNDS
    counted = await app.workflows.counts(attributes={"round": ROUNDS - 1, "phase": "p7"})
    assert counted["total"] == TOTAL
