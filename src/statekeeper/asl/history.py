"""An execution's history, in the event format of Step Functions.

Every event has an ``id`` (1, 2, 3, ... in the order they happen), the id of the
event before it on the same path (``previousEventId``: a Map iteration or a
Parallel branch has its own path), a ``timestamp`` (Unix seconds here; the HTTP
API renders it) and a ``type`` such as ``ExecutionStarted``, ``PassStateEntered``
or ``TaskSucceeded``, with its details under the key AWS gives them
(``stateEnteredEventDetails``, ``executionFailedEventDetails``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statekeeper.asl.failure import RUNTIME, StatesError, compact

MAX_EVENTS = 25_000  # events of an execution's history, as AWS allows

# The key of each event type's details, where it is not derived from the type.
_DETAILS = {
    "Entered": "stateEnteredEventDetails",
    "Exited": "stateExitedEventDetails",
}


def details_key(event_type: str) -> str:
    """``PassStateEntered`` -> ``stateEnteredEventDetails``; ``TaskSucceeded`` ->
    ``taskSucceededEventDetails``; ``MapIterationStarted`` ->
    ``mapIterationStartedEventDetails``."""
    for suffix, key in _DETAILS.items():
        if event_type.endswith("State" + suffix):
            return key
    return event_type[0].lower() + event_type[1:] + "EventDetails"


class History:
    """The events of one execution so far, in order."""

    def __init__(self, clock: Callable[[], float], *, keep: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self._clock = clock
        # Without ``keep`` (an Express execution: it has no history to read) events are
        # only numbered, and the history has no limit.
        self._keep = keep
        self._count = 0
        self.last_type: str | None = None  # the type of the last event

    @property
    def last_id(self) -> int:
        return self._count

    def add(self, event_type: str, **details: Any) -> int:
        """Record an event after the last one; its id. Past MAX_EVENTS the execution
        fails (its own end is still recorded)."""
        self.last_type = event_type
        if not self._keep:
            self._count += 1
            return self._count
        if self._count >= MAX_EVENTS and not event_type.startswith("Execution"):
            raise StatesError(
                RUNTIME,
                f"The execution reached the maximum number of events in its history "
                f"({MAX_EVENTS}).",
            )
        self._count += 1
        event: dict[str, Any] = {
            "timestamp": self._clock(),
            "type": event_type,
            "id": self._count,
            "previousEventId": self._count - 1,
        }
        if details:
            event[details_key(event_type)] = details
        self.events.append(event)
        return self._count

    def extend(self, events: list[dict[str, Any]]) -> None:
        """Events recorded by an earlier run of the same execution (a replay)."""
        self.events.extend(events)
        self._count += len(events)
        if events:
            self.last_type = events[-1]["type"]


def entered(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "input": compact(value), "inputDetails": {"truncated": False}}


def exited(name: str, value: Any, assigned: dict[str, Any] | None) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": name,
        "output": compact(value),
        "outputDetails": {"truncated": False},
    }
    if assigned:
        shown["assignedVariables"] = {key: compact(v) for key, v in assigned.items()}
        shown["assignedVariablesDetails"] = {"truncated": False}
    return shown
