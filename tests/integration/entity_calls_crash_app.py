"""The app of the entity signal and ctx.call crash test, run in worker processes: an
entity whose handler takes its time (so kills land mid-call), workflows that call it
step after step with ``ctx.call`` and write each answer to a durable stream, and the
signals the test sends to it."""

from __future__ import annotations

import asyncio
import os

from statekeeper import App
from statekeeper.entities import EntityContext
from statekeeper.entities.signals import ENTITY_CALLS
from statekeeper.workflows import WorkflowContext

app = App(os.environ["CRASH_PG_URL"], namespace="crash", purge_interval=None, entity_lease=1.0)
app.workflows.lease = 2.0  # killed runners' workflows come back quickly
app.queue(ENTITY_CALLS, visibility_timeout=2.0)  # and their signals too
tally = app.entity("tally", initial=0)


@tally.handler
async def increment(ctx: EntityContext, by: int) -> int:
    await asyncio.sleep(0.005)
    ctx.state += by
    return int(ctx.state)


@app.workflow
async def bump(ctx: WorkflowContext, calls: int) -> list[int]:
    got = []
    for _ in range(calls):
        got.append(await ctx.call("tally", "calls", "increment", 1))
        await ctx.write_stream("got", got[-1])  # each value once, whatever the kills
    return got
