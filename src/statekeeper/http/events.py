"""Event store routes of the HTTP API.

POST /v1/events/streams/{stream}                   append -> 201 (409 wrong_expected_version)
GET  /v1/events/streams/{stream}                   a stream's events (404 stream_not_found)
GET  /v1/events/streams                            streams and their versions
GET  /v1/events                                    the namespace's global log
GET  /v1/events/categories/{category}              the events of a category's streams
GET  /v1/events/projections                        every registered projection's status
GET  /v1/events/projections/{name}                 one projection's status and lag
POST /v1/events/projections/{name}/rebuild         -> 202 (409 projection_busy)
GET  /v1/events/subscriptions                      checkpoints, lag, holders, failures
GET  /v1/events/subscriptions/{name}/parked        a subscription's parked events

Appends go through ``app.events``, which checks stream names and events as it does for
the Python API (one check for every door); the body's own shape is checked here before.
Listings page with ``next`` (``http/event_models.py``); the checks and documents are
the CLI's too (``http/event_checks.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import (
    InvalidEvent,
    InvalidFilter,
    InvalidIdentifier,
    InvalidStreamName,
    SubscriptionNotFound,
    ValidationError,
)
from statekeeper.events.model import check_stream
from statekeeper.http.body import read_json
from statekeeper.http.event_checks import (
    EXPECTED_RULE,
    STREAM_RULE,
    check_category,
    check_events,
    check_name_text,
    check_projection_name,
    check_subscription_text,
    event_document,
    expected_version,
    kind,
    parked_document,
    subscription_document,
)
from statekeeper.http.event_models import (
    Appended,
    AppendRequest,
    CategoryEvents,
    CategoryReadOptions,
    EventLog,
    LogReadOptions,
    ParkedList,
    ParkedOptions,
    ProjectionList,
    ProjectionStatus,
    RebuildStarted,
    StreamEvents,
    StreamList,
    StreamListOptions,
    StreamReadOptions,
    SubscriptionList,
    SubscriptionListOptions,
    query,
)
from statekeeper.http.operations import Answer, Body, Operation, Param, path_param, query_params
from statekeeper.http.responses import model_response
from statekeeper.identifiers import (
    MAX_GROUP,
    MAX_QUEUE_NAME,
    MAX_STREAM_NAME,
    QUEUE_NAME_RULE,
    _text,
    shown,
)

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

BAD_QUERY = "A malformed, unknown or repeated parameter"
BODY_SHAPE = '{"events": [{"type": ..., "data": ...}], "expected_version": ...}'


class EventRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        stream = path_param(
            "stream", f"The stream: {STREAM_RULE}; its category is the name before the "
            "first '-'.", max_length=MAX_STREAM_NAME,
        )  # fmt: skip
        category = path_param(
            "category", f"The category: {STREAM_RULE}, no '-'.", max_length=MAX_STREAM_NAME
        )
        projection = path_param(
            "name", f"A projection of the app: {QUEUE_NAME_RULE}.",
            max_length=MAX_QUEUE_NAME, choices=self._projections,
        )  # fmt: skip
        subscription = path_param(
            "name", f"The subscription, as listed: {STREAM_RULE}.", max_length=MAX_STREAM_NAME
        )
        headers = (
            Param(
                "Expected-Version",
                "header",
                f"The body's expected_version, given as a header instead: {EXPECTED_RULE}.",
            ),
            Param(
                "X-Correlation-Id",
                "header",
                "Kept in each event's metadata as correlation_id (unless it has one): "
                "1-128 characters without control characters.",
            ),
            Param(
                "X-Causation-Id",
                "header",
                "Kept in each event's metadata as causation_id (unless it has one): "
                "1-128 characters without control characters.",
            ),
        )
        bad_query = "a malformed, unknown or repeated parameter"
        return [
            Operation(
                "POST",
                "/v1/events/streams/{stream}",
                self.append,
                "Append events to a stream if it is at the expected version",
                {
                    201: Answer("Appended", Appended, ("Location",)),
                    400: Answer("Malformed JSON, stream name, event or expected version"),
                    409: Answer("The stream is not at the expected version; nothing stored"),
                    413: Answer("Body or event data too large"),
                },
                (stream, *headers),
                Body("The events to append", AppendRequest, required=True),
                "All the events commit or none does. Retrying an append with an exact "
                "expected_version stores it once at most: a repeat after it committed is 409.",
            ),
            Operation(
                "GET",
                "/v1/events/streams/{stream}",
                self.read_stream,
                "A page of a stream's events, forwards or backwards",
                {
                    200: Answer("The events", StreamEvents),
                    400: Answer(f"Malformed stream name, or {bad_query}"),
                    404: Answer("The stream has no event"),
                },
                (stream, *query_params(StreamReadOptions)),
            ),
            Operation(
                "GET",
                "/v1/events/streams",
                self.list_streams,
                "Streams and their versions, in name order",
                {200: Answer("A page of streams", StreamList), 400: Answer(BAD_QUERY)},
                query_params(StreamListOptions),
            ),
            Operation(
                "GET",
                "/v1/events",
                self.read_log,
                "A page of the namespace's global log, forwards or backwards",
                {200: Answer("The events", EventLog), 400: Answer(BAD_QUERY)},
                query_params(LogReadOptions),
            ),
            Operation(
                "GET",
                "/v1/events/categories/{category}",
                self.read_category,
                "A page of the events of a category's streams, in global order",
                {
                    200: Answer("The events", CategoryEvents),
                    400: Answer(f"Malformed category, or {bad_query}"),
                },
                (category, *query_params(CategoryReadOptions)),
            ),
            Operation(
                "GET",
                "/v1/events/projections",
                self.list_projections,
                "The status of every projection the app registers",
                {200: Answer("Their status", ProjectionList)},
            ),
            Operation(
                "GET",
                "/v1/events/projections/{name}",
                self.projection,
                "A projection's generations, checkpoint, lag, failures and parked events",
                {
                    200: Answer("Its status", ProjectionStatus),
                    400: Answer("Malformed name"),
                    404: Answer("No projection of that name is registered"),
                },
                (projection,),
            ),
            Operation(
                "POST",
                "/v1/events/projections/{name}/rebuild",
                self.rebuild,
                "Rebuild a projection into a new generation; readers switch when it caught up",
                {
                    202: Answer("Rebuild started", RebuildStarted, ("Location",)),
                    400: Answer("Malformed name"),
                    404: Answer("No projection of that name is registered"),
                    409: Answer("The projection is being rebuilt already"),
                },
                (projection,),
                description="The projector of `statekeeper serve` or `worker` (of an app "
                "registering the projection) replays the whole log into the new generation "
                "while readers keep the current one.",
            ),
            Operation(
                "GET",
                "/v1/events/subscriptions",
                self.list_subscriptions,
                "Subscriptions with their checkpoint, lag, holder, failures and parked events",
                {200: Answer("A page of subscriptions", SubscriptionList), 400: Answer(BAD_QUERY)},
                query_params(SubscriptionListOptions),
            ),
            Operation(
                "GET",
                "/v1/events/subscriptions/{name}/parked",
                self.parked,
                "A subscription's parked events, with the error each was parked with",
                {
                    200: Answer("A page of parked events", ParkedList),
                    400: Answer(f"Malformed name, or {bad_query}"),
                    404: Answer("No subscription of that name"),
                },
                (subscription, *query_params(ParkedOptions)),
            ),
        ]

    def _projections(self) -> list[str]:
        return sorted(self.app.projections.registered)

    # --- appending --------------------------------------------------------------------

    async def append(self, request: Request) -> Response:
        stream = check_stream(request.path_params["stream"])
        correlation = _id_header(request, "x-correlation-id", "correlation id")
        causation = _id_header(request, "x-causation-id", "causation id")
        header = request.headers.get("expected-version")
        _, body = await read_json(request, self.config.max_body_bytes, required=True)
        events, expected = _append_body(body, stream, header)
        done = await self.app.events.append(
            stream, events, expected_version=expected,
            correlation_id=correlation, causation_id=causation,
        )  # fmt: skip
        appended = Appended(
            stream=done.stream, version=done.version, first_position=done.first_position,
            last_position=done.last_position, ids=done.ids,
        )  # fmt: skip
        return model_response(appended, 201, {"Location": stream_location(stream)})

    # --- reading ----------------------------------------------------------------------

    async def read_stream(self, request: Request) -> Response:
        stream = check_stream(request.path_params["stream"])
        options: StreamReadOptions = query(StreamReadOptions, request)
        backwards = options.direction == "backwards"
        found = await self.app.events.read_stream(
            stream, start=options.start, backwards=backwards, limit=options.limit + 1
        )
        page = found[: options.limit]
        following = None
        if len(found) > options.limit:
            following = page[-1].version + (-1 if backwards else 1)
        events = StreamEvents.model_validate(
            {"stream": stream, "direction": options.direction, "next": following,
             "items": [event_document(e) for e in page]}
        )  # fmt: skip
        return model_response(events)

    async def list_streams(self, request: Request) -> Response:
        options: StreamListOptions = query(StreamListOptions, request)
        prefix = check_name_text("prefix", options.prefix, InvalidFilter)
        after = check_name_text("after", options.after, InvalidStreamName)
        found = await self.app.events.streams(prefix, after=after, limit=options.limit + 1)
        page = found[: options.limit]
        following = page[-1].stream if len(found) > options.limit else None
        listed = StreamList.model_validate(
            {"items": [row._asdict() for row in page], "next": following}
        )
        return model_response(listed)

    async def read_log(self, request: Request) -> Response:
        options: LogReadOptions = query(LogReadOptions, request)
        head = await self.app.events.head()
        found = await self.app.events.read_all(
            after=options.after,
            limit=options.limit + 1,
            backwards=options.direction == "backwards",
        )
        page = found[: options.limit]
        following = page[-1].position if len(found) > options.limit else None
        log = EventLog.model_validate(
            {"direction": options.direction, "head": head, "next": following,
             "items": [event_document(e) for e in page]}
        )  # fmt: skip
        return model_response(log)

    async def read_category(self, request: Request) -> Response:
        category = check_category(request.path_params["category"])
        options: CategoryReadOptions = query(CategoryReadOptions, request)
        found = await self.app.events.read_category(
            category, after=options.after, limit=options.limit + 1
        )
        page = found[: options.limit]
        following = page[-1].position if len(found) > options.limit else None
        events = CategoryEvents.model_validate(
            {"category": category, "next": following, "items": [event_document(e) for e in page]}
        )
        return model_response(events)

    # --- projections and subscriptions ------------------------------------------------

    async def list_projections(self, request: Request) -> Response:
        projections = self.app.projections
        items = [await projections.status(name) for name in self._projections()]
        return model_response(ProjectionList.model_validate({"items": items}))

    async def projection(self, request: Request) -> Response:
        name = check_projection_name(request.path_params["name"])
        status = await self.app.projections.status(name)
        return model_response(ProjectionStatus.model_validate(status))

    async def rebuild(self, request: Request) -> Response:
        name = check_projection_name(request.path_params["name"])
        building = await self.app.projections.rebuild(name)
        location = f"/v1/events/projections/{quote(name, safe='')}"
        started = RebuildStarted(name=name, building=building, status_url=location)
        return model_response(started, 202, {"Location": location})

    async def list_subscriptions(self, request: Request) -> Response:
        options: SubscriptionListOptions = query(SubscriptionListOptions, request)
        after = check_name_text("after", options.after, InvalidIdentifier)
        head = await self.app.events.head()
        storage = self.app.backend.subscriptions
        found = await storage.page(self.app.namespace, after=after, limit=options.limit + 1)
        page = found[: options.limit]
        following = page[-1].name if len(found) > options.limit else None
        listed = SubscriptionList.model_validate(
            {"head": head, "next": following,
             "items": [subscription_document(row, head) for row in page]}
        )  # fmt: skip
        return model_response(listed)

    async def parked(self, request: Request) -> Response:
        name = check_subscription_text(request.path_params["name"])
        options: ParkedOptions = query(ParkedOptions, request)
        storage = self.app.backend.subscriptions
        namespace = self.app.namespace
        if await storage.get(namespace, name) is None:
            raise SubscriptionNotFound(f"there is no subscription {name!r}", subscription=name)
        found = await storage.parked(namespace, name, after=options.after, limit=options.limit + 1)
        page = found[: options.limit]
        following = page[-1].position if len(found) > options.limit else None
        listed = ParkedList.model_validate(
            {"subscription": name, "next": following,
             "items": [parked_document(row) for row in page]}
        )  # fmt: skip
        return model_response(listed)


# --- checks -----------------------------------------------------------------------------


def _id_header(request: Request, header: str, what: str) -> str | None:
    """A correlation or causation id header: the rule of correlation ids."""
    value = request.headers.get(header)
    return None if value is None else _text(what, value, MAX_GROUP, InvalidIdentifier)


def _append_body(body: Any, stream: str, header: str | None) -> tuple[list[Any], int]:
    """The events and the expected version of an append's body (and header)."""
    if not isinstance(body, dict):
        raise ValidationError(f"the request body is {kind(body)}, not an object: {BODY_SHAPE}")
    unknown = sorted(set(body) - {"events", "expected_version"})
    if unknown:
        raise ValidationError(
            f"the request body has an unknown field {shown(unknown[0])}: {BODY_SHAPE}"
        )
    if "events" not in body:
        raise InvalidEvent(f"the append to {stream!r} has no events: {BODY_SHAPE}")
    events = check_events(body["events"], stream)
    if "expected_version" in body and header is not None:
        raise ValidationError(
            "the expected version is given twice (expected_version and the Expected-Version "
            "header): give one"
        )
    if header is not None:
        return events, expected_version(header.strip(), "Expected-Version header", text=True)
    return events, expected_version(body.get("expected_version", "any"), "expected_version")


def stream_location(stream: str) -> str:
    """The URL of a stream's events, its name percent-encoded."""
    return f"/v1/events/streams/{quote(stream, safe='')}"
