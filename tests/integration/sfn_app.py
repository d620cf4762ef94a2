"""The app the Step Functions API test serves: Task functions for its machines."""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App

app = App(os.environ["SFN_DB_URL"], purge_interval=None)
asked: list[str] = []


@app.task_function
def ask(event: dict[str, Any]) -> None:
    """Hands out the task token (the test reads it from the history's TaskScheduled)."""


@app.task_function
def double(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("n") == 13:
        raise ValueError("unlucky")
    return {"n": event["n"] * 2}
