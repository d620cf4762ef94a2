"""The app the multi-host tests run on their worker hosts (tests/hosts).

Every effect, a workflow step's or a message's, is a row keyed by what it is for, in a
table with a primary key, written the way an idempotent handler writes (``ON CONFLICT
DO NOTHING``); each try is also counted in ``attempts``, with the host that made it, so
a test sees both what took effect (once) and what ran again after a host was cut off.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg

from statekeeper import App, Message, Retry

HOST = os.environ["HOSTS_NAME"]
DSN = os.environ["HOSTS_PG_DSN"]  # the database, through the link this host has to it
LEASE = float(os.environ.get("HOSTS_LEASE", "3"))
STEP_SECONDS = float(os.environ.get("HOSTS_STEP_SECONDS", "0.005"))

app = App(f"{DSN}{'&' if '?' in DSN else '?'}pool_max=12", namespace="hosts", purge_interval=None)
app.workflows.lease = LEASE  # a cut-off host's workflows move on within seconds
app.queue("work", retry=Retry(max_attempts=100, initial_interval=0.05, max_delay=1.0),
          visibility_timeout=LEASE)  # fmt: skip
_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()

APPLY = """
WITH tried AS (INSERT INTO attempts (kind, key, host) VALUES ($1, $2, $3))
INSERT INTO effects (kind, key, host) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
"""


async def apply(kind: str, key: str) -> None:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(DSN, min_size=1, max_size=8)
    await _pool.execute(APPLY, kind, key, HOST)


async def effect_step(workflow_id: str, step: int) -> int:
    await asyncio.sleep(STEP_SECONDS)
    await apply("step", f"{workflow_id}/{step}")
    return step


@app.workflow
async def ten_steps(ctx: object, workflow_id: str) -> int:
    total = 0
    for step in range(10):
        total += await ctx.step(effect_step, workflow_id, step)  # type: ignore[attr-defined]
    return total


@app.consumer("work", concurrency=16)
async def apply_message(message: Message) -> str:
    await asyncio.sleep(STEP_SECONDS)
    await apply("message", message.id)
    return "applied"


async def nothing(step: int) -> int:
    return step


@app.workflow
async def ten_pure_steps(ctx: object, workflow_id: str) -> int:
    """Steps with no effect: what is left of a step is its checkpoint."""
    total = 0
    for step in range(10):
        total += await ctx.step(nothing, step)  # type: ignore[attr-defined]
    return total
