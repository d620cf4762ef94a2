"""The app the mailbox and update crash test runs in worker processes: a workflow that
takes messages from its mailbox and applies updates while it waits."""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App

DSN = os.environ["CRASH_PG_DSN"]
SCHEMA = os.environ["CRASH_PG_SCHEMA"]

app = App(os.environ["CRASH_PG_URL"], namespace="crash", purge_interval=None)


@app.workflow
async def ledger(ctx: Any, sizes: dict[str, int]) -> dict[str, list[Any]]:
    items: list[Any] = []

    def add(item: Any) -> int:
        items.append(item)
        return len(items)

    ctx.on_update("add", add)
    got = [await ctx.receive("t") for _ in range(sizes["messages"])]
    await ctx.wait_condition(lambda: len(items) >= sizes["updates"])
    return {"got": got, "items": items}
