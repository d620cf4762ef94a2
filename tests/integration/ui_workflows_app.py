"""The app of the dashboard's workflow pages test (UI_DB_URL): a workflow whose steps
take a while (to watch it advance), and one whose payment step is declined."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from statekeeper import App

app = App(os.environ["UI_DB_URL"], namespace="ui", purge_interval=None)


class Declined(Exception):
    pass


async def pause(seconds: float, n: int) -> int:
    await asyncio.sleep(seconds)
    return n


async def charge(order: str) -> str:
    raise Declined(f"card declined for {order}")


@app.workflow(name="slow")
async def slow(ctx: Any, seconds: float) -> int:
    total = 0
    for n in range(4):
        total += await ctx.step(pause, seconds, n)
    return total


@app.workflow(name="payment")
async def payment(ctx: Any, order: str) -> str:
    await ctx.step(pause, 0.0, 1)
    return str(await ctx.step(charge, order, non_retryable=(Declined,)))
