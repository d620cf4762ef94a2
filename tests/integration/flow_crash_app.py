"""The app of the flow-control crash test (test_flow_crash.py), run by its workers.

Queue "limited": at most 4 runs at once, one per key. Each step of a run probes that
from inside, with PostgreSQL session advisory locks (a killed worker's connection, and
its locks, go with it): it must get one of 4 slot locks, and its key's lock; a step
that cannot records a violation. Queue "rated": 50 admissions a second; each run
records when its step ran.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg

from statekeeper import App, Retry

DSN = os.environ["CRASH_PG_DSN"]
SCHEMA = os.environ["CRASH_PG_SCHEMA"]
SLOTS = 4

app = App(os.environ["CRASH_PG_URL"], namespace="flow", purge_interval=None)
app.workflows.lease = 2.0  # killed runners' workflows come back quickly
app.workflow_queue("limited", concurrency=SLOTS, per_key_concurrency=1, key="key")
app.workflow_queue("rated", rate=(50, 1.0))
_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()


async def pool() -> asyncpg.Pool:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(
                DSN, min_size=1, max_size=8, server_settings={"search_path": SCHEMA}
            )
    return _pool


async def probed_step(workflow_id: str, key: str, step: int) -> int:
    db = await pool()
    async with db.acquire() as conn:
        slot = None
        for candidate in range(SLOTS):
            if await conn.fetchval("SELECT pg_try_advisory_lock(44, $1)", candidate):
                slot = candidate
                break
        if slot is None:
            await conn.execute(
                "INSERT INTO flow_violations (kind, workflow_id) VALUES ('slots', $1)", workflow_id
            )
        keyed = await conn.fetchval("SELECT pg_try_advisory_lock(45, hashtext($1))", key)
        if not keyed:
            await conn.execute(
                "INSERT INTO flow_violations (kind, workflow_id) VALUES ('key', $1)", workflow_id
            )
        try:
            await asyncio.sleep(float(os.environ.get("FLOW_STEP_SECONDS", "0.002")))
            await conn.execute(
                "INSERT INTO flow_effects (workflow_id, step) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                workflow_id,
                step,
            )
        finally:
            if keyed:
                await conn.execute("SELECT pg_advisory_unlock(45, hashtext($1))", key)
            if slot is not None:
                await conn.execute("SELECT pg_advisory_unlock(44, $1)", slot)
    return step


@app.workflow
async def limited_run(ctx: Any, input: dict[str, Any]) -> int:
    total = 0
    for step in range(1):
        total += await ctx.step(
            probed_step, ctx.workflow_id, input["key"], step, retry=Retry(max_attempts=5)
        )
    return total


async def note_start(workflow_id: str) -> None:
    db = await pool()
    await db.execute(
        "INSERT INTO flow_rated (workflow_id, at) "
        "VALUES ($1, extract(epoch from clock_timestamp())) ON CONFLICT DO NOTHING",
        workflow_id,
    )


@app.workflow
async def rated_run(ctx: Any, n: int) -> int:
    await ctx.step(note_start, ctx.workflow_id, retry=Retry(max_attempts=5))
    return n
