"""The app that the API fuzzing test serves (SQLite): one queue with a consumer, a
workflow that waits for an event or a callback (STATEKEEPER_CALLBACK_SECRET is set),
a projection, and an entity type with an exclusive and a read-only handler."""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App, Message
from statekeeper.entities import EntityContext
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


tally = app.entity("tally", initial=0)


@tally.handler
def add(ctx: EntityContext, amount: Any) -> Any:
    """Adds a number; anything else fails the call (a 409, never a 5xx)."""
    if not isinstance(amount, int | float) or isinstance(amount, bool):
        raise ValueError("add takes a number")
    ctx.state += amount
    return ctx.state


@tally.handler(readonly=True)
def total(ctx: EntityContext) -> Any:
    return ctx.state
