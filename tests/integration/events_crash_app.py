"""The app that the event store's crash test runs in ``statekeeper worker`` processes.

Its projection ``totals`` keeps, per stream, how many events it has handled, the sum of
their amounts and the last version it handled, written with the projection's
checkpoint: a killed worker's half-done event leaves nothing, and the read model ends
equal to a replay of the log (an event handled twice would count twice).

EVENTS_CRASH_URL: the database; EVENTS_CRASH_LEASE: the projection's lease in seconds.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from statekeeper import App
from statekeeper.events.model import RecordedEvent

PROJECTION = "totals"

app = App(
    os.environ["EVENTS_CRASH_URL"], namespace="evcrash", purge_interval=None,
    maintenance_interval=None, encryption=None,
)  # fmt: skip


# A killed worker keeps its lease until it runs out: a short one lets the next resume soon.
@app.projection(PROJECTION, batch=25, lease=float(os.environ.get("EVENTS_CRASH_LEASE", "1.0")))
async def totals(event: RecordedEvent, view: Any) -> None:
    """Per stream: how many events, the sum of their amounts, the last version."""
    found = await view.get(event.stream, {"count": 0, "sum": 0, "version": 0})
    view.put(event.stream, {
        "count": found["count"] + 1,
        "sum": found["sum"] + event.data["amount"],
        "version": event.version,
    })  # fmt: skip


# Woken by LISTEN/NOTIFY or in-process; a quicker poll than the default still helps
# a worker that just took the lease over.
_registered = app.projections.registered[PROJECTION]
_registered.options = dataclasses.replace(_registered.options, poll=0.2)
