"""Live status streams: Server-Sent Events that follow a request or a workflow.

GET /v1/requests/{id}/events             accepted, processing, failed (each attempt),
                                         then succeeded or dead-lettered: the stream ends
GET /v1/workflows/{name}/{id}/events     status changes, each journal entry (steps,
                                         published values, ...), then its end
GET /v1/workflows/{name}/{id}/streams/{key}   a durable stream's values (?offset=),
                                         then end (at its close, or the workflow's end)

Each event has an ``id``; a client that reconnects with ``Last-Event-ID`` gets what
came after it, so a dropped connection misses nothing. The events are not a log of
their own: they follow from what is stored (a request's attempts and state, a
workflow's journal and status), so writing them costs the work nothing.

A stream reads when its subject changes: it watches the subject (queues/wakeups.py),
and the process that changes it wakes the stream, in this process directly and in
others by LISTEN/NOTIFY on PostgreSQL; nothing is announced for subjects no one
watches. Notifications are hints: a stream reads once more a second after it starts
(a watch announced while the change happened) and at every keep-alive (15 s), so a
lost notification costs latency, never an event. A process serves at most
``HttpConfig.max_streams`` streams at once; past them, 503 ``too_many_streams``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from statekeeper.errors import StatekeeperError, ValidationError, WorkflowNotFound
from statekeeper.http.models import parse
from statekeeper.http.operations import Answer, Operation, Param, path_param, query_params
from statekeeper.http.responses import error_response
from statekeeper.identifiers import (
    MAX_WORKFLOW_ID,
    MESSAGE_ID_RULE,
    WORKFLOW_ID_RULE,
    check_message_id,
    check_workflow_id,
    check_workflow_name,
)
from statekeeper.queues.requests import request_status
from statekeeper.queues.wakeups import request_subject, workflow_subject
from statekeeper.workflows.mailbox import MAX_NAME, NAME_RULE, check_name

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

KEEPALIVE = 15.0  # seconds between keep-alive comments (and safety reads)
FIRST_LOOK = 1.0  # a second read this soon after the first
JOURNAL_PAGE = 500  # journal entries read at once
MAX_OFFSET = 10**12
C = TypeVar("C")
_WORKFLOW_EVENT = re.compile(r"(\d{1,9})\.(\d{1,9})\.([a-z_]{0,20})")
Cursor = tuple[int, int, str]  # a workflow stream's: runs, journal position, status


class StreamOptions(BaseModel):
    """Query parameters of ``GET /v1/workflows/{name}/{id}/streams/{key}``."""

    model_config = {"extra": "forbid"}

    offset: int = Field(
        default=0, ge=0, le=MAX_OFFSET,
        description="Read from this offset (0: the first value); Last-Event-ID wins.",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    kind: str
    data: dict[str, Any]

    def encoded(self) -> bytes:
        """The event as SSE lines (an empty id: none, the client keeps its last)."""
        data = json.dumps(self.data, separators=(",", ":"), default=str)
        head = f"id: {self.id}\n" if self.id else ""
        return f"{head}event: {self.kind}\ndata: {data}\n\n".encode()


# What a stream reads: its events after the cursor, the new cursor, and whether the
# subject has ended (then the stream ends after these events).
Reader = Callable[[C], Awaitable[tuple[list[Event], C, bool]]]


class StreamRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        self.open = 0  # streams open in this process

    def operations(self) -> list[Operation]:
        last = Param(
            "Last-Event-ID", "header", "Resume after this event (the id of the last one seen)."
        )
        request = path_param("id", f"The id the ingress answered: {MESSAGE_ID_RULE}.")
        name = path_param(
            "name", f"A workflow of the app: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID
        )
        run = path_param("id", f"The workflow id: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID)
        key = path_param("key", f"The stream's key: {NAME_RULE}.", max_length=MAX_NAME)
        events = Answer("An event stream (text/event-stream)", None)
        busy = Answer(
            "Too many streams open in this process: retry later", headers=("Retry-After",)
        )
        return [
            Operation(
                "GET",
                "/v1/requests/{id}/events",
                self.request_events,
                "Follow a request live (Server-Sent Events)",
                {
                    200: events,
                    400: Answer("Malformed Last-Event-ID"),
                    404: Answer("No such request"),
                    503: busy,
                },
                (request, last),
                description="Events accepted, processing, failed (per attempt), then "
                "succeeded or dead-lettered, whose data is the request's status; the "
                "stream ends with the request.",
            ),
            Operation(
                "GET",
                "/v1/workflows/{name}/{id}/streams/{key}",
                self.durable_stream,
                "Read a workflow's durable stream, live (Server-Sent Events)",
                {
                    200: events,
                    400: Answer("Malformed name, id, key, offset or Last-Event-ID"),
                    404: Answer("No workflow of that name and id"),
                    503: busy,
                },
                (name, run, key, *query_params(StreamOptions), last),
                description="Events value (each value written by ctx.write_stream, its "
                "offset as the event id), then end (closed, or the workflow's status); "
                "Last-Event-ID resumes after that offset.",
            ),
            Operation(
                "GET",
                "/v1/workflows/{name}/{id}/events",
                self.workflow_events,
                "Follow a workflow live (Server-Sent Events)",
                {
                    200: events,
                    400: Answer("Malformed name, id or Last-Event-ID"),
                    404: Answer("No workflow of that name and id"),
                    503: busy,
                },
                (name, run, last),
                description="Events status (each change), entry (each journal entry: "
                "steps, published values, ...), then end (its outcome); the stream "
                "ends with the workflow.",
            ),
        ]

    # --- requests ---------------------------------------------------------------------

    async def request_events(self, request: Request) -> Response:
        id = request.path_params["id"]
        try:
            check_message_id(id)
        except StatekeeperError:
            return error_response(404, "not_found", "there is no such request")
        after = _count(request.headers.get("last-event-id"))
        app = self.app
        if await request_status(app.backend, app.namespace, id, app.sealer) is None:
            return error_response(404, "not_found", f"there is no request {id!r}")

        async def read(sent: int) -> tuple[list[Event], int, bool]:
            document = await request_status(app.backend, app.namespace, id, app.sealer)
            if document is None:  # purged meanwhile: nothing more will come
                return [], sent, True
            events = request_history(document)
            ended = document["status"] in ("succeeded", "dead-lettered")
            return events[sent:], max(sent, len(events)), ended

        return await self._stream(request_subject(id), read, after)

    # --- workflows --------------------------------------------------------------------

    async def workflow_events(self, request: Request) -> Response:
        name = check_workflow_name(request.path_params["name"])
        run = check_workflow_id(request.path_params["id"])
        cursor = _workflow_cursor(request.headers.get("last-event-id"))
        flows = self.app.workflows
        status = await flows.status(run)
        if status.name != name:
            raise WorkflowNotFound(f"there is no workflow {name!r} with id {run!r}", id=run)

        async def read(at: Cursor) -> tuple[list[Event], Cursor, bool]:
            runs, position, shown = at
            events: list[Event] = []
            current = await flows.status(run)
            now_runs = await flows.runs(run)
            if now_runs != runs:  # it continued as new: a journal of its own from 1
                runs, position = now_runs, 0
            while True:
                entries = await flows.entries(run, after=position, limit=JOURNAL_PAGE)
                for entry in entries:
                    position = entry["position"]
                    events.append(Event(f"{runs}.{position}.{shown}", "entry", entry))
                if len(entries) < JOURNAL_PAGE:
                    break
            if current.status != shown:
                shown = current.status
                events.append(Event(f"{runs}.{position}.{shown}", "status", {"status": shown}))
            if current.done:
                outcome = current.to_dict(traceback=False)
                events.append(Event(f"{runs}.{position}.{shown}.end", "end", outcome))
            return events, (runs, position, shown), current.done

        return await self._stream(workflow_subject(run), read, cursor)

    # --- durable streams --------------------------------------------------------------

    async def durable_stream(self, request: Request) -> Response:
        name = check_workflow_name(request.path_params["name"])
        run = check_workflow_id(request.path_params["id"])
        key = check_name("stream key", request.path_params["key"])
        options = parse(StreamOptions, dict(request.query_params), "the query")
        last = request.headers.get("last-event-id")
        offset = options.offset if last is None else _count(last, "an offset") + 1
        flows = self.app.workflows
        status = await flows.status(run)
        if status.name != name:
            raise WorkflowNotFound(f"there is no workflow {name!r} with id {run!r}", id=run)

        async def read(at: int) -> tuple[list[Event], int, bool]:
            page = await flows.streams.page(run, key, at)
            events = [
                Event(str(e.offset), "value", {"offset": e.offset, "value": e.value})
                for e in page.entries
            ]
            at = page.entries[-1].offset + 1 if page.entries else at
            if page.ended:
                status = await flows.status(run)
                ending = {"closed": page.closed, "status": status.status}
                events.append(Event(str(at - 1) if at else "", "end", ending))
            return events, at, page.ended

        return await self._stream(workflow_subject(run), read, offset)

    # --- the stream -------------------------------------------------------------------

    async def _stream(self, subject: str, read: Reader[C], cursor: C) -> Response:
        """The stream's response: its first read done here (its errors answered as
        such; a subject ended with nothing after the client's Last-Event-ID is 204, which
        tells an SSE client not to reconnect), then the events as they come."""
        if self.open >= self.config.max_streams:
            return error_response(
                503, "too_many_streams",
                f"this process serves {self.config.max_streams} streams at once already; "
                "retry later",
                {"Retry-After": "5"},
            )  # fmt: skip
        app = self.app
        app.wakeups.start_watching(app.namespace, subject)
        try:
            first = app.wakeups.change_event(app.namespace, subject)  # before reading
            events, cursor, ended = await read(cursor)
        except BaseException:
            app.wakeups.stop_watching(app.namespace, subject)
            raise
        if ended and not events:
            app.wakeups.stop_watching(app.namespace, subject)
            return Response(status_code=204)
        body = self._events(subject, read, cursor, events, ended, first)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return CountedStream(
            self, body, lambda: app.wakeups.stop_watching(app.namespace, subject),
            media_type="text/event-stream", headers=headers,
        )  # fmt: skip

    async def _events(
        self,
        subject: str,
        read: Reader[C],
        cursor: C,
        events: list[Event],
        ended: bool,
        woken: asyncio.Event,
    ) -> AsyncIterator[bytes]:
        """The events of the first read, then of each read after a change (the subject
        is watched from ``_stream`` to the end of the CountedStream)."""
        app = self.app
        wakeups, namespace = app.wakeups, app.namespace
        closing = app.runtime.stopping_event() if app.runtime is not None else None
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        wait = FIRST_LOOK
        while True:
            for event in events:
                yield event.encoded()
            if ended:
                return
            if len(events) < JOURNAL_PAGE:  # else more are waiting: read on at once
                waits = [asyncio.ensure_future(woken.wait())]
                if closing is not None:
                    waits.append(asyncio.ensure_future(closing.wait()))
                try:
                    done, _ = await asyncio.wait(
                        waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for task in waits:
                        task.cancel()
                if closing is not None and closing.is_set():
                    return  # the server is stopping: the client reconnects elsewhere
                if not done:
                    yield b": keep-alive\n\n"
                wait = KEEPALIVE
            if loop.time() - renewed >= KEEPALIVE:
                wakeups.renew(namespace, subject)
                renewed = loop.time()
            woken = wakeups.change_event(namespace, subject)  # before reading
            try:
                events, cursor, ended = await read(cursor)
            except StatekeeperError as error:  # purged, a key missing, the database
                yield Event("", "error", {"code": error.code, "message": error.message}).encoded()
                return


class CountedStream(StreamingResponse):
    """A stream counted in its routes' ``open`` from its start to its end, however it
    ends (a client gone before its first event included), its body closed at the end."""

    def __init__(
        self,
        routes: StreamRoutes,
        body: AsyncIterator[bytes],
        on_end: Callable[[], None],
        **options: Any,
    ) -> None:
        super().__init__(body, **options)
        self._routes = routes
        self._body = body
        self._on_end = on_end

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._routes.open += 1
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._routes.open -= 1
            self._on_end()
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()


def request_history(document: dict[str, Any]) -> list[Event]:
    """A request's events as its status implies them: accepted; per attempt,
    processing and (but for the last) failed; then the last attempt's end. The last
    event's data is the whole status document."""
    id, attempts, status = document["id"], int(document.get("attempts") or 0), document["status"]
    kinds: list[tuple[str, int]] = [("accepted", 0)]
    for attempt in range(1, attempts + 1):
        kinds.append(("processing", attempt))
        if attempt < attempts:
            kinds.append(("failed", attempt))
    if status in ("failed", "succeeded", "dead-lettered"):
        kinds.append((status, attempts))
    events = [
        Event(str(n), kind, {"id": id, "status": kind, "attempt": attempt})
        for n, (kind, attempt) in enumerate(kinds, start=1)
    ]
    last = events[-1]
    events[-1] = Event(last.id, last.kind, {**document, **last.data})
    return events


def _count(header: str | None, what: str = "the number of an event") -> int:
    """The number of events a request stream's client has seen, or the offset of the
    last value a durable stream's client read (its Last-Event-ID)."""
    if header is None:
        return 0
    if not header.isascii() or not header.isdigit() or len(header) > 12:
        raise ValidationError(f"Last-Event-ID of this stream is {what}, got {header[:40]!r}")
    return int(header)


def _workflow_cursor(header: str | None) -> Cursor:
    """(its runs, last journal position, last status) a workflow stream's client has
    seen: the event id ``<runs>.<position>.<status>``."""
    if header is None:
        return 0, 0, ""
    found = _WORKFLOW_EVENT.fullmatch(header.removesuffix(".end"))
    if found is None:
        raise ValidationError(f"Last-Event-ID {header[:40]!r} is not an event of this stream")
    return int(found.group(1)), int(found.group(2)), found.group(3)
