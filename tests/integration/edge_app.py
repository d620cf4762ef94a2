"""The app that the server-edge tests serve: one queue with a consumer, one workflow."""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App, Message

app = App(os.environ["EDGE_DB_URL"], namespace="edge", purge_interval=None)
app.queue("orders")


@app.consumer("orders")
async def handle(message: Message) -> object:
    return message.body


@app.workflow
async def trip(ctx: Any, plan: Any) -> Any:
    return plan
