"""The app of the dashboard's block pages test (``test_ui_blocks.py``), for ``statekeeper
serve`` (its database and namespace from ``STATEKEEPER_DATABASE_URL`` and
``STATEKEEPER_NAMESPACE``): the workflow its schedules start, an entity type, and a
projection and a subscription of the ``order`` streams (the subscription parks the
events that have a note). The test declares the same on its own app."""

from __future__ import annotations

from typing import Any

from statekeeper import App, Retry
from statekeeper.entities import EntityContext


def declare(app: App) -> None:
    @app.workflow(name="nightly")
    async def nightly(ctx: Any, input: Any) -> Any:
        return input

    counter = app.entity("counter", initial=0)

    @counter.handler
    def add(ctx: EntityContext, by: int) -> int:
        ctx.state += by
        return int(ctx.state)

    @counter.handler(readonly=True)
    def value(ctx: EntityContext) -> int:
        return int(ctx.state)

    @app.projection("order_totals", category="order")
    async def order_totals(event: Any, view: Any) -> None:
        if event.type == "Placed":
            view.put(event.stream, {"total": event.data["total"]})

    @app.subscription("audit", category="order", retry=Retry(max_attempts=1))
    def audit(event: Any) -> None:
        if "note" in event.data:  # parked at once: one attempt
            raise ValueError(f"refused {event.data['note']}")


app = App(purge_interval=None)
declare(app)
