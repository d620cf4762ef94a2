"""The app that the API fuzzing test serves (SQLite, one queue with a consumer)."""

from __future__ import annotations

import os

from statekeeper import App, Message

app = App(os.environ["SCHEMA_DB_URL"], namespace="fuzz", purge_interval=None)
app.queue("orders")


@app.consumer("orders")
async def handle(message: Message) -> object:
    return message.body
