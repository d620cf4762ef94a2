"""The app that crash tests run in worker and server processes.

Its consumer applies an effect (a row keyed by the message id, in a table with a
unique constraint) the way an idempotent consumer does: a redelivered message whose
effect is already there is acknowledged without applying it twice.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg

from statekeeper import App, Message, Retry

DSN = os.environ["CRASH_PG_DSN"]
SCHEMA = os.environ["CRASH_PG_SCHEMA"]

app = App(os.environ["CRASH_PG_URL"], namespace="crash", purge_interval=None)
app.queue("work", retry=Retry(max_attempts=50, initial_interval=0.05, max_delay=0.5),
          visibility_timeout=2.0)  # fmt: skip
_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()


async def pool() -> asyncpg.Pool:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(
                DSN, min_size=1, max_size=4, server_settings={"search_path": SCHEMA}
            )
    return _pool


@app.consumer("work", concurrency=8)
async def apply_effect(message: Message) -> str:
    await asyncio.sleep(float(os.environ.get("CRASH_WORK_SECONDS", "0.03")))
    db = await pool()
    try:
        await db.execute(
            "INSERT INTO crash_effects (message_id, body) VALUES ($1, $2)",
            message.id,
            str(message.body),
        )
    except asyncpg.UniqueViolationError:
        return "already applied"  # a redelivery after a crash between effect and ack
    return "applied"


app.queue("ordered", retry=Retry(max_attempts=50, initial_interval=0.05, max_delay=0.5),
          visibility_timeout=2.0)  # fmt: skip


@app.consumer("ordered", concurrency=8)
async def apply_in_order(message: Message) -> str:
    """A FIFO group's effect: a row per message, its serial giving the order of effects;
    a session lock per group shows whether two messages of one group were ever in hand
    at once, in any worker (a killed worker's connection, and lock, go with it)."""
    group = str(message.group)
    db = await pool()
    async with db.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock(43, hashtext($1))", group):
            await conn.execute(
                "INSERT INTO group_overlaps (grp, message_id) VALUES ($1, $2)", group, message.id
            )
        try:
            await asyncio.sleep(float(os.environ.get("CRASH_WORK_SECONDS", "0.03")))
            await conn.execute(
                "INSERT INTO group_effects (message_id, grp, n) VALUES ($1, $2, $3)",
                message.id,
                group,
                int(message.body["n"]),
            )
        except asyncpg.UniqueViolationError:
            return "already applied"
        finally:
            await conn.execute("SELECT pg_advisory_unlock(43, hashtext($1))", group)
    return "applied"


app.workflows.lease = 2.0  # killed runners' workflows come back quickly


async def effect_step(workflow_id: str, step: int) -> int:
    """A step's side effect, applied once per (workflow, step); the advisory lock shows
    whether two workers ever ran steps of one workflow at the same time."""
    db = await pool()
    async with db.acquire() as conn:
        # hashtext, not Python's hash(): the same number in every worker process.
        if not await conn.fetchval("SELECT pg_try_advisory_lock(42, hashtext($1))", workflow_id):
            await conn.execute(
                "INSERT INTO wf_violations (workflow_id, step) VALUES ($1, $2)", workflow_id, step
            )
        try:
            await asyncio.sleep(float(os.environ.get("CRASH_STEP_SECONDS", "0.002")))
            await conn.execute(
                "INSERT INTO wf_effects (workflow_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                workflow_id,
                step,
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock(42, hashtext($1))", workflow_id)
    return step


@app.workflow
async def ten_steps(ctx: object, workflow_id: str) -> int:
    total = 0
    for step in range(10):
        total += await ctx.step(effect_step, workflow_id, step)  # type: ignore[attr-defined]
    return total


async def forward(workflow_id: str, step: int) -> list[Any]:
    if step == 5:
        raise RuntimeError("step 5 always fails")
    return [workflow_id, step]


async def compensate(done: list[Any]) -> None:
    """Undo a forward step: a row per (workflow, step), its serial id giving the order."""
    await asyncio.sleep(float(os.environ.get("CRASH_COMPENSATION_SECONDS", "0.02")))
    db = await pool()
    await db.execute(
        "INSERT INTO saga_undo (workflow_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        done[0],
        done[1],
    )


@app.workflow
async def saga_flow(ctx: Any, workflow_id: str) -> None:
    async with ctx.saga() as saga:
        for step in range(6):
            await saga.step(
                forward, workflow_id, step, compensate=compensate, retry=Retry(max_attempts=1)
            )
