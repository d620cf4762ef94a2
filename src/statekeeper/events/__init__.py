"""The event store, subscriptions and projections (``app.events``, ``@app.subscription``,
``@app.projection``): see docs/events.md."""

from statekeeper.events.aggregates import Aggregate, AggregateRepository, when
from statekeeper.events.model import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    EventData,
    RecordedEvent,
)
from statekeeper.events.subscriptions import HandlerContext
from statekeeper.events.upcasting import Upcasters

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "Aggregate",
    "AggregateRepository",
    "AppendResult",
    "EventData",
    "HandlerContext",
    "RecordedEvent",
    "Upcasters",
    "when",
]
