"""The app the live-stream tests serve and work (STREAM_DB_URL): a queue whose consumer
fails a message's first attempt when asked to and takes a moment on each, a queue no
one consumes (its requests stay accepted: streams that stay open), and a workflow with
steps, a published value and a sleep, and one that writes a durable stream."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from statekeeper import App, Message, Retry
from statekeeper.workflows import WorkflowContext

app = App(os.environ["STREAM_DB_URL"], namespace="streams", purge_interval=None)
app.queue("jobs", retry=Retry(max_attempts=3, initial_interval=0.2, max_delay=0.2))
app.queue("parked")


@app.consumer("jobs")
async def work(message: Message) -> Any:
    body = message.body if isinstance(message.body, dict) else {}
    await asyncio.sleep(float(body.get("seconds", 0.5)))
    if body.get("fail_first") and message.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"done": body.get("n")}


def double(n: int) -> int:
    return n * 2


@app.workflow
async def feed(ctx: WorkflowContext, n: int) -> int:
    """Writes ``n`` values to its durable stream ``numbers``, a pause every fifth, then
    closes it."""
    for i in range(n):
        await ctx.write_stream("numbers", {"i": i})
        if i % 5 == 4:
            await ctx.sleep(0.1)
    await ctx.close_stream("numbers")
    return n


@app.workflow
async def pipeline(ctx: WorkflowContext, n: int) -> dict[str, Any]:
    first = await ctx.step(double, n)
    await ctx.publish("progress", {"first": first})
    await ctx.sleep(0.5)
    second = await ctx.step(double, first)
    return {"result": second}
