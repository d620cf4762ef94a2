"""Flow control under SIGKILL, on PostgreSQL: 500 runs of a queue with concurrency 4 and
per-key concurrency 1 run on 3 workers, a random one killed every 2.5 s and started
again. Probes inside the steps (advisory locks, flow_crash_app.py) never see more than 4
runs at once, nor two of one key; every run succeeds and every step's effect is there
once. Meanwhile a queue limited to 50 admissions a second is fed 600 runs: no 1 s
window admits more than 50 (+10%), and the busiest 10 s admit 500 within 10%."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import start, stop_workers

pytestmark = pytest.mark.crash

RUNS = 500
RATED = 600
KEYS = 40
WORKER = ["worker", "--app", "flow_crash_app:app"]
YOUNGEST = 4.0  # seconds a worker is given to start before it is asked to stop
last_start = [0.0]


async def kill_every(
    schema: str,
    processes: list[Process],
    finished: Callable[[], Awaitable[bool]],
    *,
    every: float,
    limit: float,
) -> tuple[list[Process], int]:
    """Run 3 workers; every ``every`` seconds, until ``finished()``, SIGKILL a random
    one and start it again (a slower pace than crash_support's: a worker must live long
    enough on a loaded machine to take runs). The workers running, and the kills."""
    workers: list[Process] = [start(WORKER, schema) for _ in range(3)]
    processes.extend(workers)
    rng = random.Random(12)
    kills = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for _ in range(int(every / 0.25)):
            await asyncio.sleep(0.25)
            if await finished():
                return workers, kills
        victim = rng.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        kills += 1
        workers[victim] = start(WORKER, schema)
        last_start[0] = time.monotonic()
        processes.append(workers[victim])
    return workers, kills


@pytest.fixture
async def prepared(schema: str) -> AsyncIterator[App]:
    url = f"{pg_dsn()}?schema={schema}"
    async with App(url, namespace="flow", purge_interval=None) as app:  # creates the schema
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
        await conn.execute(
            "CREATE TABLE flow_violations (kind TEXT NOT NULL, workflow_id TEXT NOT NULL);"
            "CREATE TABLE flow_effects (workflow_id TEXT, step INT, "
            "PRIMARY KEY (workflow_id, step));"
            "CREATE TABLE flow_rated (workflow_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)"
        )
        await conn.close()
        app.workflow_queue("limited", concurrency=4, per_key_concurrency=1, key="key")
        app.workflow_queue("rated", rate=(50, 1.0))

        async def run_elsewhere(ctx: Any, input: Any) -> Any:  # the workers run them
            raise AssertionError("runs in the workers")

        app.workflow(run_elsewhere, name="limited_run")
        app.workflow(run_elsewhere, name="rated_run")
        yield app


async def test_flow_limits_hold_while_workers_die(
    prepared: App, schema: str, processes: list[Process]
) -> None:
    app = prepared
    starts = [
        app.workflows.start("limited_run", {"key": f"k{n % KEYS}"}, queue="limited", id=f"l{n}")
        for n in range(RUNS)
    ] + [app.workflows.start("rated_run", n, queue="rated", id=f"r{n}") for n in range(RATED)]
    for at in range(0, len(starts), 50):
        await asyncio.gather(*starts[at : at + 50])
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    try:

        async def all_done() -> bool:
            left = await conn.fetchval(
                "SELECT count(*) FROM sk_workflows WHERE status <> 'succeeded'"
            )
            return int(left) == 0

        began = time.monotonic()
        workers, kills = await kill_every(schema, processes, all_done, every=2.5, limit=45)
        await asyncio.sleep(max(0.0, YOUNGEST - (time.monotonic() - last_start[0])))
        codes = stop_workers(workers)  # each has its SIGTERM handler in place by now
        elapsed = time.monotonic() - began
        counts = (
            await conn.fetch(
                "SELECT f.queue, w.status, f.state, count(*) FROM sk_workflows w "
                "JOIN sk_flow_runs f USING (namespace, id) GROUP BY 1, 2, 3"
            )
            + await conn.fetch(
                "SELECT w.id, w.wake_at, w.lease_expires_at, extract(epoch from now()) "
                "FROM sk_workflows w "
                "JOIN sk_flow_runs f USING (namespace, id) WHERE f.state = 'admitted'"
            )
            + await conn.fetch("SELECT id, error FROM sk_workflows WHERE status = 'failed'")
        )
        assert await all_done(), f"not all runs finished in {elapsed:.0f} s: {counts}"
        assert kills >= 3, kills
        # 0, or SIGTERM's for a worker still starting (no handler yet) on a loaded machine
        assert set(codes) <= {0, -signal.SIGTERM}, codes
        violations = await conn.fetch("SELECT kind, workflow_id FROM flow_violations")
        assert violations == [], violations[:10]
        effects = await conn.fetchval("SELECT count(*) FROM flow_effects")
        assert effects == RUNS
        for n in (0, RUNS - 1):
            assert await app.workflows.result(f"l{n}") == 0
        held = await conn.fetchval("SELECT count(*) FROM sk_flow_runs WHERE state <> 'done'")
        assert held == 0
        # The rate: decided in the database (admitted_at), and seen by the steps.
        admitted = sorted(
            row[0]
            for row in await conn.fetch(
                "SELECT admitted_at FROM sk_flow_runs WHERE queue = 'rated'"
            )
        )
        assert len(admitted) == RATED
        busiest = max(
            sum(1 for t in admitted[i:] if t < start + 1.0) for i, start in enumerate(admitted)
        )
        assert busiest <= 55, busiest
        # The busiest 10 s (the workers start after the runs were started, so the
        # first admissions, at the starts, are followed by a pause): 500 within 10%.
        in_ten = max(
            sum(1 for t in admitted[i:] if t < start + 10.0) for i, start in enumerate(admitted)
        )
        assert 450 <= in_ten <= 550, in_ten
        # Every rated run's step ran (once: the table's key). When they ran is not the
        # limit's: runs admitted while no worker was up run together once one is.
        ran = await conn.fetchval("SELECT count(*) FROM flow_rated")
        assert ran == RATED
    finally:
        await conn.close()
