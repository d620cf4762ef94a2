"""What the event store's two doors, the HTTP routes (``http/events.py``) and the
``statekeeper events`` verbs, check and print alike: the limits of positions and pages,
expected versions, categories, listing filters, and the documents of events,
subscriptions and parked events.

Free of the web stack (no pydantic, no starlette), so a CLI command does not pay for
importing it. The HTTP models (``http/event_models.py``) take their limits from here.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from statekeeper.constants import MAX_LIST_LIMIT
from statekeeper.errors import (
    InvalidEvent,
    InvalidFilter,
    InvalidIdentifier,
    InvalidStreamName,
    ValidationError,
)
from statekeeper.events.model import (
    ANY,
    EXISTS,
    MAX_EVENTS_PER_APPEND,
    NO_STREAM,
    RecordedEvent,
    check_stream,
)
from statekeeper.identifiers import (
    MAX_STREAM_NAME,
    QUEUE_NAME_RULE,
    check_subscription_name,
    has_control,
    shown,
    utf8_length,
)
from statekeeper.storage.subscription_ops import ParkedRow, SubscriptionRow

MAX_POSITION = 2**53 - 1  # positions and versions: exact in every JSON reader
DEFAULT_PAGE = 100
DECIMAL = re.compile(r"[0-9]{1,16}")  # an integer as text: decimal digits only

LIMIT_RULE = f"an integer from 1 to {MAX_LIST_LIMIT} (default {DEFAULT_PAGE})"
POSITION_RULE = f"an integer from 0 to {MAX_POSITION}"
DIRECTION_RULE = "forwards or backwards"
NAME_RULE = f"0-{MAX_STREAM_NAME} characters without control characters"
STREAM_RULE = f"1-{MAX_STREAM_NAME} characters without control characters"
EXPECTED = {"any": ANY, "no_stream": NO_STREAM, "exists": EXISTS}
EXPECTED_RULE = (
    '"any", "no_stream", "exists" or a stream version (an integer from 0, the same as '
    f'"no_stream", to {MAX_POSITION})'
)
EVENT_SHAPE = '{"type": ..., "data": ..., "metadata": ..., "id": ...}'


# --- documents ----------------------------------------------------------------------------


def event_document(event: RecordedEvent) -> dict[str, Any]:
    """An event as JSON; data that is not JSON (bytes) as ``data_base64``."""
    document = event.to_dict()
    if isinstance(event.data, bytes | bytearray):
        document["data"] = None
        document["data_base64"] = base64.b64encode(event.data).decode("ascii")
    return document


def subscription_document(row: SubscriptionRow, head: int) -> dict[str, Any]:
    """A subscription's row with its lag behind the log's ``head``."""
    return {
        "name": row.name, "position": row.position, "lag": max(0, head - row.position),
        "holder": row.holder, "lease_expires_at": row.lease_expires_at,
        "failing_position": row.failing_position, "failures": row.failures,
        "last_error": row.last_error, "parked": row.parked, "created_at": row.created_at,
        "updated_at": row.updated_at,
    }  # fmt: skip


def parked_document(row: ParkedRow) -> dict[str, Any]:
    return row._asdict()


# --- checks -------------------------------------------------------------------------------


def expected_version(value: object, where: str, *, text: bool = False) -> int:
    """An expected version as ``app.events.append`` takes it; with ``text`` (a header,
    an option), a version may be written in decimal digits."""
    if isinstance(value, str) and value in EXPECTED:
        return EXPECTED[value]
    if text and isinstance(value, str) and DECIMAL.fullmatch(value):
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_POSITION:
        return value
    raise ValidationError(f"invalid {where} {shown(value)}: {EXPECTED_RULE}")


def check_events(events: object, stream: str) -> list[Any]:
    """A JSON list of 1 to MAX_EVENTS_PER_APPEND objects (``app.events`` checks each)."""
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS_PER_APPEND:
        size = f"{len(events)} events" if isinstance(events, list) else kind(events)
        raise InvalidEvent(
            f"the append to {stream!r} has {size}: events are a list of 1 to "
            f"{MAX_EVENTS_PER_APPEND} objects {EVENT_SHAPE}"
        )
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise InvalidEvent(
                f"event {index} of the append to {stream!r} is {kind(event)}, not an object "
                + EVENT_SHAPE
            )
    return events


def check_category(category: object) -> str:
    """A category: a stream name's part before its first '-' (so without one)."""
    try:
        name = check_stream(category)
    except InvalidStreamName:
        raise InvalidStreamName(
            f"invalid category {shown(category)}: a category is {STREAM_RULE}"
        ) from None
    if "-" in name:
        raise InvalidFilter(
            f"invalid category {shown(name)}: a category is a stream name's part before "
            "its first '-', so it has no '-'"
        )
    return name


def check_projection_name(name: object) -> str:
    """A projection's name: the rule of subscription (and queue) names."""
    try:
        return check_subscription_name(name)
    except InvalidIdentifier:
        raise InvalidIdentifier(
            f"invalid projection name {shown(name)}: a projection name is {QUEUE_NAME_RULE}"
        ) from None


def check_subscription_text(name: object) -> str:
    """A subscription's name as listed: the rule of stream names (a projection's
    subscriptions are named ``statekeeper.projection.<name>.<generation>``)."""
    try:
        return check_stream(name)
    except InvalidStreamName:
        raise InvalidIdentifier(
            f"invalid subscription name {shown(name)}: a subscription name is {STREAM_RULE}"
        ) from None


def check_name_text(what: str, value: str, error: type[ValidationError]) -> str:
    """A listing's prefix or ``after``: empty, or a name's text (no control characters)."""
    if len(value) > MAX_STREAM_NAME or has_control(value) or utf8_length(value) is None:
        raise error(f"invalid {what} {shown(value)}: {NAME_RULE}")
    return value


def kind(value: object) -> str:
    """What a JSON value is, for an error message."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}  # fmt: skip
    return names.get(type(value), shown(value))
