"""The event store, subscriptions and projections (``app.events``, ``@app.subscription``,
``@app.projection``): see docs/events.md."""

from statekeeper.events.model import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    EventData,
    RecordedEvent,
)
from statekeeper.events.subscriptions import HandlerContext

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "AppendResult",
    "EventData",
    "HandlerContext",
    "RecordedEvent",
]
