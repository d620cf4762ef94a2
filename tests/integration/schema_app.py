"""The app that the API fuzzing test serves (SQLite): one queue with a consumer, a
workflow that waits for an event or a callback (STATEKEEPER_CALLBACK_SECRET is set),
and a projection."""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App, Message
from statekeeper.workflows import WorkflowContext

app = App(os.environ["SCHEMA_DB_URL"], namespace="fuzz", purge_interval=None)
app.queue("orders")


@app.consumer("orders")
async def handle(message: Message) -> object:
    return message.body


@app.workflow
async def approval(ctx: WorkflowContext, request: Any) -> Any:
    callback = await ctx.callback(timeout=3600)
    note = await ctx.wait_for_event("note", timeout=3600)
    return {"request": request, "note": note, "answer": await callback.result()}


@app.projection("order", category="order")
async def orders(event: Any, view: Any) -> None:
    """A read model the fuzzer's projection routes can name (``order``)."""
    view.put(event.stream, {"type": event.type, "version": event.version})
