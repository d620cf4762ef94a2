"""The app of the dashboard's queue and state test (UI_DB_URL, UI_NAMESPACE): the
consumer of queue ``jobs`` refuses every message while the state key
``switches/refuse`` is true (dead-lettering it at once), and otherwise records each
message it processes under ``processed/{n}``."""

from __future__ import annotations

import os

from statekeeper import App, Message

app = App(os.environ["UI_DB_URL"], namespace=os.environ["UI_NAMESPACE"], purge_interval=None)


class Refused(Exception):
    pass


@app.consumer("jobs", non_retryable=(Refused,))
async def jobs(message: Message) -> str:
    switch = await app.state.get("switches/refuse")
    n = message.body["n"]
    if switch is not None and switch.value:
        raise Refused(f"message {n} refused: switches/refuse is on")
    await app.state.put(f"processed/{n}", {"message": message.id})
    return "done"
