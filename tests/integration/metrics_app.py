"""The app of the metrics test (METRICS_DB_URL): a queue whose consumer dead-letters
messages asking it to fail, and a workflow of three steps."""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App, Message

app = App(os.environ["METRICS_DB_URL"], namespace="metrics", purge_interval=None)


class Refused(Exception):
    pass


@app.consumer("jobs", non_retryable=(Refused,))
async def jobs(message: Message) -> str:
    if message.body.get("fail"):
        raise Refused("asked to fail")
    return "done"


async def add(a: int, b: int) -> int:
    return a + b


@app.workflow(name="three_steps")
async def three_steps(ctx: Any, n: int) -> int:
    total = await ctx.step(add, n, 1)
    total = await ctx.step(add, total, 1)
    return int(await ctx.step(add, total, 1))
