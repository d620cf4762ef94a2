"""What the event store speaks in: events to append, recorded events, expected versions.

A stream is a named sequence of events (``order-42``); its category is the name before
the first ``-`` (``order``). Stream versions start at 1: a stream's version is the
number of events in it, 0 when it has none. Global positions start at 1 too and number
every event of a namespace in commit order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from statekeeper.codec import encode_value
from statekeeper.errors import InvalidEvent, InvalidStreamName, ValidationError
from statekeeper.identifiers import MAX_EVENT_TYPE, MAX_STREAM_NAME, _text, shown
from statekeeper.storage.rows import ANY_VERSION, STREAM_EXISTS

# Expected versions: ANY (no check), NO_STREAM (the stream has no event yet), EXISTS
# (it has at least one), or an exact version (an int >= 1).
ANY = ANY_VERSION
NO_STREAM = 0
EXISTS = STREAM_EXISTS

MAX_EVENTS_PER_APPEND = 1000
MAX_METADATA_BYTES = 16 * 1024
_ID_LIMIT = 200


def check_stream(stream: object) -> str:
    """A stream name: 1-200 characters without control characters."""
    return _text("stream name", stream, MAX_STREAM_NAME, InvalidStreamName)


def category_of(stream: str) -> str:
    """The stream's category: its name before the first ``-`` (all of it without one)."""
    return stream.partition("-")[0]


def check_expected(expected: object) -> int:
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < EXISTS:
        raise ValidationError(
            f"invalid expected version {shown(expected)}: ANY, NO_STREAM, EXISTS or a "
            "stream version (an integer >= 1)"
        )
    return expected


@dataclass(frozen=True, slots=True)
class EventData:
    """An event to append: its type, JSON data and metadata; ``id`` defaults to a new
    UUID. Metadata is a JSON object; ``correlation_id`` and ``causation_id`` in it
    follow an event's causes (the append's own arguments fill them in)."""

    type: str
    data: Any = None
    metadata: Mapping[str, Any] | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: ``version`` is its place in its stream (from 1),
    ``position`` its place in the namespace's global log (from 1)."""

    id: str
    type: str
    data: Any
    metadata: dict[str, Any]
    stream: str
    version: int
    position: int
    recorded_at: float

    @property
    def category(self) -> str:
        return category_of(self.stream)

    @property
    def correlation_id(self) -> str | None:
        found = self.metadata.get("correlation_id")
        return found if isinstance(found, str) else None

    @property
    def causation_id(self) -> str | None:
        found = self.metadata.get("causation_id")
        return found if isinstance(found, str) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "data": self.data, "metadata": self.metadata,
            "stream": self.stream, "version": self.version, "position": self.position,
            "recorded_at": self.recorded_at,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stream's version after the append and the global positions of its events."""

    stream: str
    version: int
    first_position: int
    last_position: int
    ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event checked and encoded: id, type, JSON data, metadata as JSON text."""

    id: str
    type: str
    data: bytes
    metadata: str | None


def prepare(
    stream: str,
    index: int,
    event: object,
    max_bytes: int,
    correlation_id: str | None,
    causation_id: str | None,
    checked_types: set[str] | None = None,
) -> Prepared:
    """One event of an append checked: an EventData or a mapping with ``type`` and
    optional ``data``, ``metadata``, ``id``; errors name its index. ``checked_types``:
    the types the append's earlier events had (each is checked once)."""
    where = f"event {index} of the append to {stream!r}"
    if isinstance(event, Mapping):
        unknown = sorted(set(event) - {"type", "data", "metadata", "id"})
        if unknown:
            raise InvalidEvent(f"{where} has an unknown field {unknown[0]!r}")
        fields: dict[str, Any] = dict(event)
        event = EventData(
            cast(str, fields.get("type")),
            fields.get("data"),
            fields.get("metadata"),
            fields.get("id"),
        )
    if not isinstance(event, EventData):
        raise InvalidEvent(f"{where} is {shown(event)}, not an EventData or a mapping")
    kind = event.type
    if checked_types is None or type(kind) is not str or kind not in checked_types:
        _named(where, "event type", kind, MAX_EVENT_TYPE)
        if checked_types is not None:
            checked_types.add(kind)
    given = event.id
    id = str(uuid.uuid4()) if given is None else _named(where, "event id", given, _ID_LIMIT)
    data = encode_value("", event.data, max_bytes, subject=f"the data of {where}")
    meta: dict[str, Any] = {}
    if event.metadata is not None:
        if not isinstance(event.metadata, Mapping):
            raise InvalidEvent(f"the metadata of {where} is {shown(event.metadata)}, not an object")
        meta.update(event.metadata)
    if correlation_id is not None:
        meta.setdefault("correlation_id", correlation_id)
    if causation_id is not None:
        meta.setdefault("causation_id", causation_id)
    text = None
    if meta:
        encoded = encode_value("", meta, MAX_METADATA_BYTES, subject=f"the metadata of {where}")
        text = encoded.decode("utf-8")
    return Prepared(id, kind, data, text)


def _named(where: str, field: str, value: object, limit: int) -> str:
    """An event's type or id: 1-``limit`` characters without control characters."""
    try:
        return _text(field, value, limit, InvalidEvent)
    except InvalidEvent as error:
        raise InvalidEvent(f"{where}: {error.message}") from None


def read_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    found = json.loads(text)
    return found if isinstance(found, dict) else {}


def read_data(data: bytes) -> Any:
    """Stored event data: JSON, or the bytes as they are when another writer (the
    ``eventsourcing`` module's recorders) stored something else."""
    try:
        return json.loads(data.decode("utf-8")) if data else None
    except (ValueError, RecursionError):
        return data
