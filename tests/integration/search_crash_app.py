"""The app the workflow search crash test runs in its worker processes: workflows that
set attributes round after round, a step between rounds."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from statekeeper import App

DSN = os.environ["CRASH_PG_DSN"]
SCHEMA = os.environ["CRASH_PG_SCHEMA"]
ROUNDS = 8

app = App(os.environ["CRASH_PG_URL"], namespace="crash", purge_interval=None)
app.workflows.lease = 2.0  # killed runners' workflows come back quickly


async def work(round: int) -> int:
    await asyncio.sleep(0.75)
    return round


@app.workflow
async def labelled(ctx: Any, _: Any) -> int:
    for round in range(ROUNDS):
        await ctx.set_attributes({"round": round, "phase": f"p{round}"})
        await ctx.step(work, round)
    return ROUNDS
