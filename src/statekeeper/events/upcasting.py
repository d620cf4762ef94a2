"""Upcasting: reading events written in an older shape as the code's current shape.

An event's schema version lives in its metadata under ``schema_version``; an event
without it is at version 1 (every event written before its type ever changed). An
upcaster turns the data of one version into the next:

    upcasters = Upcasters()

    @upcasters.register("ItemAdded", 1)      # version 1 -> 2: prices got a currency
    def add_currency(data):
        return {**data, "currency": "EUR"}

    @upcasters.register("ItemAdded", 2)      # version 2 -> 3: qty renamed quantity
    def rename_qty(data):
        data["quantity"] = data.pop("qty")
        return data

The current version of a type is one more than its last upcaster (3 here; 1 for a type
without upcasters). ``upcast(event)`` runs the chain from the event's version up to the
current one; an event newer than the code knows (``schema_version`` 4 here) is an
InvalidEvent naming it, never read in a shape its handlers do not expect. ``stamp``
writes the current version into the metadata of a new event (aggregate repositories
do it on save); the key is left out at version 1, so events of types that never
changed carry no extra metadata. Upcasting happens on reading only: stored events are
never rewritten.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from statekeeper.errors import ConfigurationError, InvalidEvent
from statekeeper.events.model import RecordedEvent
from statekeeper.identifiers import MAX_EVENT_TYPE, _text, shown

SCHEMA_VERSION = "schema_version"  # the metadata key of an event's schema version

Upcaster = Callable[[Any], Any]
U = TypeVar("U", bound=Upcaster)


def _version(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"invalid {what} {shown(value)}: an integer >= 1")
    return value


def schema_version_of(event: RecordedEvent) -> int:
    """The schema version an event was written at (1 when its metadata has none)."""
    found = event.metadata.get(SCHEMA_VERSION, 1)
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise InvalidEvent(
            f"event {event.version} of stream {event.stream!r} (type {event.type!r}, id "
            f"{event.id!r}) has {SCHEMA_VERSION} {shown(found)}, not an integer >= 1",
            stream=event.stream, version=event.version, type=event.type,
        )  # fmt: skip
    return found


class Upcasters:
    """A registry of upcasters: ``(event type, from version) -> function(data) -> data``.

    One registry may serve several readers (aggregate repositories, projections): pass
    it to each. Upcasters are plain functions (not coroutines); they receive a copy of
    the data, which they may change in place, and return the next version's.
    """

    def __init__(self) -> None:
        self._chains: dict[str, dict[int, Upcaster]] = {}
        self._current: dict[str, int] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[U], U]:
        """Decorate the function that upcasts ``event_type`` from ``from_version`` to
        the next version."""

        def decorate(fn: U) -> U:
            self.add(event_type, from_version, fn)
            return fn

        return decorate

    def add(self, event_type: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` to upcast ``event_type`` from ``from_version`` to the next."""
        kind = _text("event type", event_type, MAX_EVENT_TYPE, ConfigurationError)
        version = _version(from_version, f"from_version of the upcaster of {kind!r}")
        if not callable(fn) or inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"the upcaster of {kind!r} from version {version} is {shown(fn)}; an "
                "upcaster is a plain function of the event's data (not a coroutine)"
            )
        chain = self._chains.setdefault(kind, {})
        if version in chain:
            raise ConfigurationError(
                f"{kind!r} already has an upcaster from version {version} ({shown(chain[version])})"
            )
        chain[version] = fn
        self._current.pop(kind, None)

    def current(self, event_type: str) -> int:
        """The version the code writes and handles ``event_type`` at: one more than its
        last upcaster (1 without any). A chain with a gap (1 -> 2, then 3 -> 4 without
        2 -> 3) is a ConfigurationError."""
        found = self._current.get(event_type)
        if found is not None:
            return found
        chain = self._chains.get(event_type, {})
        missing = [v for v in range(1, len(chain) + 1) if v not in chain]
        if missing:
            raise ConfigurationError(
                f"the upcasters of {event_type!r} go from versions {sorted(chain)}: the one "
                f"from version {missing[0]} is missing"
            )
        self._current[event_type] = len(chain) + 1
        return len(chain) + 1

    def upcast(self, event: RecordedEvent) -> RecordedEvent:
        """The event at its type's current version: the same event when it is there
        already, else a copy with upcast data and ``schema_version`` in its metadata.
        InvalidEvent for an event newer than the code knows (or with an invalid
        ``schema_version``), naming it."""
        version = schema_version_of(event)
        current = self.current(event.type)
        if version == current:
            return event
        if version > current:
            raise InvalidEvent(
                f"event {event.version} of stream {event.stream!r} (type {event.type!r}, id "
                f"{event.id!r}) has schema version {version}, newer than the {current} this "
                f"code knows: register its upcasters, or deploy the code that wrote it",
                stream=event.stream, version=event.version, type=event.type,
                schema_version=version, known=current,
            )  # fmt: skip
        chain = self._chains[event.type]
        data = copy.deepcopy(event.data)  # the caller's event stays as it was
        for step in range(version, current):
            data = chain[step](data)
        metadata = {**event.metadata, SCHEMA_VERSION: current}
        return dataclasses.replace(event, data=data, metadata=metadata)

    def stamp(self, event_type: str, metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The metadata of a new ``event_type`` event, with its current schema version
        (left out at version 1)."""
        current = self.current(event_type)
        if current == 1:
            return None if metadata is None else dict(metadata)
        return {**(metadata or {}), SCHEMA_VERSION: current}
