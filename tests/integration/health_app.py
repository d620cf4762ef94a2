"""The app that the worker health tests run: one queue whose handler takes its time.

HEALTH_DB_URL: the database. A message ``{"seconds": S}`` takes S seconds.
"""

from __future__ import annotations

import asyncio
import os

from statekeeper import App, Message

app = App(os.environ["HEALTH_DB_URL"], namespace="health", purge_interval=None)


@app.consumer("slow")
async def slow(message: Message) -> str:
    await asyncio.sleep(message.body["seconds"])
    return "done"
