"""The bodies, parameters and answers of the event store's routes (``http/events.py``).

Listings answer ``{"items": [...], "next": ...}``: ``next`` is the value of the
paging parameter (``after``, or ``start`` for a stream) that reads the next page,
null when this page reached the end. Positions and versions are integers from 0 to
MAX_POSITION (2^53 - 1, exact in every JSON reader).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.requests import Request

from statekeeper.constants import MAX_LIST_LIMIT
from statekeeper.errors import ValidationError
from statekeeper.events.model import MAX_EVENTS_PER_APPEND
from statekeeper.http.event_checks import (
    DECIMAL,
    DEFAULT_PAGE,
    DIRECTION_RULE,
    LIMIT_RULE,
    MAX_POSITION,
    NAME_RULE,
    POSITION_RULE,
)
from statekeeper.http.models import Reply
from statekeeper.identifiers import MAX_EVENT_TYPE, MAX_STREAM_NAME, shown

MAX_EVENT_ID = 200

Direction = Literal["forwards", "backwards"]
ExpectedName = Literal["any", "no_stream", "exists"]


def _decimal(value: object) -> object:
    """A query string's integer: decimal digits only (no sign, space, ``_`` or point)."""
    if isinstance(value, str) and not DECIMAL.fullmatch(value):
        raise ValueError("not an integer in decimal digits")
    return value


Position = Annotated[int, Field(ge=0, le=MAX_POSITION), BeforeValidator(_decimal)]
Limit = Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT), BeforeValidator(_decimal)]


# --- query parameters ---------------------------------------------------------------------


class Query(BaseModel):
    """Query parameters: unknown ones are refused, each is given at most once;
    ``rules`` says what each one takes, for the error of a bad value."""

    model_config = ConfigDict(extra="forbid")
    rules: ClassVar[dict[str, str]] = {}


class StreamReadOptions(Query):
    """Query parameters of ``GET /v1/events/streams/{stream}``."""

    rules = {"start": POSITION_RULE, "direction": DIRECTION_RULE, "limit": LIMIT_RULE}

    start: Position | None = Field(
        default=None,
        description="The stream version to start at (versions start at 1): forwards the "
        "default is 1, backwards the stream's last version; " + POSITION_RULE + ".",
    )
    direction: Direction = Field(
        default="forwards", description="forwards (oldest first, the default) or backwards."
    )
    limit: Limit = Field(default=DEFAULT_PAGE, description=f"Events per page: {LIMIT_RULE}.")


class LogReadOptions(Query):
    """Query parameters of ``GET /v1/events``."""

    rules = {"after": POSITION_RULE, "direction": DIRECTION_RULE, "limit": LIMIT_RULE}

    after: Position = Field(
        default=0,
        description="Forwards: events after this global position (0, the default: from the "
        "first). Backwards: events before it, newest first (0: from the last). "
        f"{POSITION_RULE[0].upper()}{POSITION_RULE[1:]}.",
    )
    direction: Direction = Field(
        default="forwards", description="forwards (oldest first, the default) or backwards."
    )
    limit: Limit = Field(default=DEFAULT_PAGE, description=f"Events per page: {LIMIT_RULE}.")


class CategoryReadOptions(Query):
    """Query parameters of ``GET /v1/events/categories/{category}``."""

    rules = {"after": POSITION_RULE, "limit": LIMIT_RULE}

    after: Position = Field(
        default=0,
        description="Events after this global position (0, the default: from the first); "
        + POSITION_RULE
        + ".",
    )
    limit: Limit = Field(default=DEFAULT_PAGE, description=f"Events per page: {LIMIT_RULE}.")


class StreamListOptions(Query):
    """Query parameters of ``GET /v1/events/streams``."""

    rules = {"prefix": NAME_RULE, "after": NAME_RULE, "limit": LIMIT_RULE}

    prefix: str = Field(
        default="",
        max_length=MAX_STREAM_NAME,
        description=f"Only streams whose names start with this: 0-{MAX_STREAM_NAME} "
        "characters without control characters.",
    )
    after: str = Field(
        default="",
        max_length=MAX_STREAM_NAME,
        description="Streams after this name, in name order (the `next` of the previous page).",
    )
    limit: Limit = Field(default=DEFAULT_PAGE, description=f"Streams per page: {LIMIT_RULE}.")


class SubscriptionListOptions(Query):
    """Query parameters of ``GET /v1/events/subscriptions``."""

    rules = {"after": NAME_RULE, "limit": LIMIT_RULE}

    after: str = Field(
        default="",
        max_length=MAX_STREAM_NAME,
        description="Subscriptions after this name, in name order (the `next` of the "
        "previous page).",
    )
    limit: Limit = Field(default=DEFAULT_PAGE, description=f"Subscriptions per page: {LIMIT_RULE}.")


class ParkedOptions(Query):
    """Query parameters of ``GET /v1/events/subscriptions/{name}/parked``."""

    rules = {"after": POSITION_RULE, "limit": LIMIT_RULE}

    after: Position = Field(
        default=0, description="Parked events after this global position; " + POSITION_RULE + "."
    )
    limit: Limit = Field(default=DEFAULT_PAGE, description=f"Parked events per page: {LIMIT_RULE}.")


def query(model: type[Query], request: Request) -> Any:
    """The request's query as ``model``: a 400 naming the parameter and its rule for a
    bad value, an unknown parameter, or one given twice."""
    params = request.query_params
    for name in params:
        if len(params.getlist(name)) > 1:
            raise ValidationError(f"parameter {name!r} is given more than once")
    given = dict(params)
    try:
        return model.model_validate(given)
    except pydantic.ValidationError as exc:
        problem = exc.errors(include_url=False, include_input=False)[0]
        name = str(problem["loc"][0]) if problem["loc"] else ""
        if problem["type"] == "extra_forbidden" or name not in model.model_fields:
            known = ", ".join(model.model_fields)
            raise ValidationError(
                f"unknown parameter {shown(name)}: this route takes {known}"
            ) from None
        rule = model.rules.get(name, str(problem["msg"]))
        raise ValidationError(f"invalid {name} {shown(given.get(name))}: {rule}") from None


# --- appending ----------------------------------------------------------------------------


class NewEvent(BaseModel):
    """An event to append."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        min_length=1,
        max_length=MAX_EVENT_TYPE,
        description=f"The event's type: 1-{MAX_EVENT_TYPE} characters without control characters.",
    )
    data: Any = Field(default=None, description="The event's data: any JSON value (none: null).")
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="A JSON object kept with the event; the X-Correlation-Id and "
        "X-Causation-Id headers fill in its correlation_id and causation_id.",
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EVENT_ID,
        description=f"The event's id: 1-{MAX_EVENT_ID} characters without control characters "
        "(default: a new UUID).",
    )


class AppendRequest(BaseModel):
    """The body of ``POST /v1/events/streams/{stream}``."""

    model_config = ConfigDict(extra="forbid")

    events: list[NewEvent] = Field(
        min_length=1,
        max_length=MAX_EVENTS_PER_APPEND,
        description=f"1 to {MAX_EVENTS_PER_APPEND} events, appended in order, all or none.",
    )
    expected_version: ExpectedName | Annotated[int, Field(ge=0, le=MAX_POSITION)] = Field(
        default="any",
        description='The stream\'s version the append expects: "any" (no check, the '
        'default), "no_stream" (the stream has no event yet; also 0), "exists" (it has '
        "one at least) or the exact version; else 409 and nothing is stored. The "
        "Expected-Version header may say it instead.",
    )


class Appended(Reply):
    """An append committed."""

    stream: str = Field(description="The stream appended to.")
    version: int = Field(description="The stream's version now: its number of events.")
    first_position: int = Field(description="The global position of the first event appended.")
    last_position: int = Field(description="The global position of the last event appended.")
    ids: list[str] = Field(description="The events' ids, in order.")


# --- reading ------------------------------------------------------------------------------


class Event(Reply):
    """An event as stored."""

    id: str = Field(description="The event's id.")
    type: str = Field(description="The event's type.")
    data: Any = Field(description="The event's data (JSON).")
    data_base64: str | None = Field(
        default=None,
        description="Data that is not JSON (written by another recorder), in base64; "
        "data is then null.",
    )
    metadata: dict[str, Any] = Field(description="Its metadata (correlation_id, causation_id).")
    stream: str = Field(description="Its stream.")
    version: int = Field(description="Its place in its stream, from 1.")
    position: int = Field(description="Its place in the namespace's global log, from 1.")
    recorded_at: float = Field(description="Unix time it was committed.")


NEXT_POSITION = "The `after` of the next page; null when this page reached the end."


class StreamEvents(Reply):
    """A page of a stream's events."""

    stream: str = Field(description="The stream.")
    direction: Direction = Field(description="forwards or backwards.")
    items: list[Event] = Field(description="Its events, in the direction read.")
    next: int | None = Field(
        description="The `start` of the next page; null when this page reached the end."
    )


class EventLog(Reply):
    """A page of the namespace's global log."""

    direction: Direction = Field(description="forwards or backwards.")
    head: int = Field(description="The global position of the last event (0: none yet).")
    items: list[Event] = Field(description="Events, in the direction read.")
    next: int | None = Field(description=NEXT_POSITION)


class CategoryEvents(Reply):
    """A page of the events of a category's streams, in global order."""

    category: str = Field(description="The category: stream names before their first '-'.")
    items: list[Event] = Field(description="Events, oldest first.")
    next: int | None = Field(description=NEXT_POSITION)


class StreamInfo(Reply):
    """A stream and its version."""

    stream: str = Field(description="The stream's name.")
    version: int = Field(description="Its version: its number of events.")
    updated_at: float = Field(description="Unix time of its last append.")


class StreamList(Reply):
    """A page of streams, in name order."""

    items: list[StreamInfo] = Field(description="Streams, in name order.")
    next: str | None = Field(
        description="The `after` of the next page; null when this page reached the end."
    )


# --- projections and subscriptions --------------------------------------------------------


class Progress(Reply):
    """How far a subscription (a projection's generation) has come."""

    position: int = Field(description="Its checkpoint: the last global position handled.")
    lag: int = Field(description="Events not handled yet: the log's head minus the checkpoint.")
    holder: str | None = Field(description="The process that holds (or last held) its lease.")
    failing_position: int | None = Field(description="The event it is failing on, if any.")
    failures: int = Field(description="Failures in a row on that event.")
    last_error: str | None = Field(description="The last failure's error.")
    parked: int = Field(description="Events parked after their last retry.")


class ProjectionStatus(Reply):
    """A projection: the generation readers use, one being rebuilt, their progress."""

    name: str = Field(description="The projection's name.")
    generation: int = Field(description="The generation readers use.")
    building: int | None = Field(description="The generation being rebuilt, if any.")
    head: int = Field(description="The global position of the log's last event.")
    current: Progress = Field(description="The progress of the readers' generation.")
    rebuild: Progress | None = Field(
        default=None, description="The progress of the generation being rebuilt, if any."
    )


class ProjectionList(Reply):
    """Every projection the app registers, in name order."""

    items: list[ProjectionStatus] = Field(description="Their status.")


class RebuildStarted(Reply):
    """A rebuild started: the running projector replays the log into the new generation,
    and readers switch to it once it has caught up."""

    name: str = Field(description="The projection.")
    building: int = Field(description="The new generation, being rebuilt.")
    status_url: str = Field(description="Where to follow the rebuild.")


class SubscriptionInfo(Progress):
    """A subscription of the namespace (projections' generations included)."""

    name: str = Field(description="The subscription's name.")
    lease_expires_at: float | None = Field(description="Unix time its holder's lease ends.")
    created_at: float = Field(description="Unix time it was created.")
    updated_at: float = Field(description="Unix time its checkpoint last moved.")


class SubscriptionList(Reply):
    """A page of subscriptions, in name order."""

    head: int = Field(description="The global position of the log's last event.")
    items: list[SubscriptionInfo] = Field(description="Subscriptions, in name order.")
    next: str | None = Field(
        description="The `after` of the next page; null when this page reached the end."
    )


class ParkedEvent(Reply):
    """An event a subscription gave up on after its last retry."""

    position: int = Field(description="The event's global position.")
    error: str = Field(description="The error of its last attempt.")
    attempts: int = Field(description="Attempts made.")
    parked_at: float = Field(description="Unix time it was parked.")


class ParkedList(Reply):
    """A page of a subscription's parked events, oldest first."""

    subscription: str = Field(description="The subscription.")
    items: list[ParkedEvent] = Field(description="Parked events, by position.")
    next: int | None = Field(description=NEXT_POSITION)
