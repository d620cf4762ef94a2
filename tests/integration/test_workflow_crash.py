"""Workflows under SIGKILL: 500 workflows x 10 steps across 3 PostgreSQL workers, a
random worker killed every ~0.5 s and restarted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import kill_workers_until, stop_workers

pytestmark = pytest.mark.crash


@pytest.fixture
async def prepared_flows(schema: str) -> AsyncIterator[App]:
    url = f"{pg_dsn()}?schema={schema}"
    app = App(url, namespace="crash", purge_interval=None)

    @app.workflow
    async def ten_steps(ctx: object, workflow_id: str) -> int:  # the name the workers run
        raise AssertionError("runs only in the worker processes")

    async with app:
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
        await conn.execute(
            "CREATE TABLE wf_effects (workflow_id TEXT, step INT, PRIMARY KEY (workflow_id, step))"
        )
        await conn.execute("CREATE TABLE wf_violations (workflow_id TEXT, step INT)")
        await conn.close()
        yield app


async def scalar(schema: str, sql: str) -> int:
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_500_workflows_survive_killed_workers(
    prepared_flows: App,
    schema: str,
    processes: list[Process],
) -> None:
    app = prepared_flows
    total = 500
    ids = [f"wf-{n}" for n in range(total)]
    for workflow_id in ids:
        await app.workflows.start("ten_steps", workflow_id, id=workflow_id)

    async def all_succeeded() -> bool:
        succeeded = "SELECT count(*) FROM sk_workflows WHERE status = 'succeeded'"
        return await scalar(schema, succeeded) >= total

    workers, kills = await kill_workers_until(schema, processes, all_succeeded, seed=7, limit=300)
    stop_workers(workers)
    statuses = {(await app.workflows.status(i)).status for i in ids}
    outputs = {(await app.workflows.status(i)).output for i in ids}
    assert kills >= 3, "too few kills to prove anything"
    assert statuses == {"succeeded"}
    assert outputs == {sum(range(10))}
    assert await scalar(schema, "SELECT count(*) FROM wf_effects") == total * 10
    assert await scalar(schema, "SELECT count(*) FROM wf_violations") == 0


async def test_saga_compensates_exactly_once_in_reverse_under_kills(
    schema: str, processes: list[Process]
) -> None:
    url = f"{pg_dsn()}?schema={schema}"
    app = App(url, namespace="crash", purge_interval=None)

    @app.workflow
    async def saga_flow(ctx: object, workflow_id: str) -> None:
        raise AssertionError("runs only in the worker processes")

    total = 50
    async with app:
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
        await conn.execute(
            "CREATE TABLE saga_undo (id BIGSERIAL, workflow_id TEXT, step INT, "
            "PRIMARY KEY (workflow_id, step))"
        )
        await conn.close()
        ids = [f"saga-{n}" for n in range(total)]
        for workflow_id in ids:
            await app.workflows.start("saga_flow", workflow_id, id=workflow_id)
        slow = {"CRASH_COMPENSATION_SECONDS": "0.4"}  # kills land during compensation

        async def all_compensated() -> bool:
            compensated = "SELECT count(*) FROM sk_workflows WHERE status = 'compensated'"
            return await scalar(schema, compensated) >= total

        workers, kills = await kill_workers_until(
            schema, processes, all_compensated, seed=11, limit=300, extra=slow
        )
        stop_workers(workers)
        statuses = [await app.workflows.status(i) for i in ids]
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
        try:
            rows = await conn.fetch("SELECT workflow_id, step FROM saga_undo ORDER BY id")
        finally:
            await conn.close()
    assert kills >= 3
    assert {s.status for s in statuses} == {"compensated"}
    assert all("step 5 always fails" in str(s.error) for s in statuses)
    undone: dict[str, list[int]] = {}
    for row in rows:
        undone.setdefault(row[0], []).append(row[1])
    assert undone == {i: [4, 3, 2, 1, 0] for i in ids}  # exactly the five, in reverse
