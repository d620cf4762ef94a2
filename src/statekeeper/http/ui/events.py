"""The dashboard's event store pages, reading what ``/v1/events`` reads:

- ``/ui/events``: the log's head; the streams in name order, a page at a time (with
  their version, last write and category; ``?prefix=`` narrows them); every projection
  the app registers, with its generation, checkpoint, lag behind the head, failures
  and parked events; the subscriptions, a page at a time, with theirs;
- ``/ui/events/streams/{stream}``: a stream's events from ``?start=`` (a version), a
  page at a time: position, version, type, time, data and metadata;
- ``/ui/events/subscriptions/{name}``: a subscription's checkpoint, lag, holder and
  failures, and the events it parked (handled ``retry.max_attempts`` times, failing
  each time), with the error each was parked with, a page at a time (``?after=``, a
  position).

Stream and subscription names may hold any character but control ones (slashes too),
so their pages take the rest of the path, percent-decoded, as the name. Subscriptions
have no reader on ``app.events``: their pages read the storage contract that
``GET /v1/events/subscriptions`` and ``statekeeper events subscriptions`` read.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.errors import (
    InvalidFilter,
    InvalidIdentifier,
    InvalidStreamName,
    SubscriptionNotFound,
    ValidationError,
)
from statekeeper.events.model import category_of, check_stream
from statekeeper.http.event_checks import (
    MAX_POSITION,
    check_name_text,
    check_subscription_text,
    event_document,
    parked_document,
    subscription_document,
)
from statekeeper.http.ui.shell import Shell, text_arg

STREAMS_PAGE = 50
SUBSCRIPTIONS_PAGE = 50
EVENTS_PAGE = 50
PARKED_PAGE = 50


class EventPages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        return [
            self.shell.route("/ui/events", self.overview_page),
            self.shell.route("/ui/events/streams/{stream:path}", self.stream_page),
            self.shell.route("/ui/events/subscriptions/{name:path}", self.subscription_page),
        ]

    async def overview_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        prefix = check_name_text("prefix", text_arg(request, "prefix"), InvalidFilter)
        after = check_name_text("after", text_arg(request, "after"), InvalidStreamName)
        subs_after = check_name_text(
            "subscriptions_after", text_arg(request, "subscriptions_after"), InvalidIdentifier
        )
        head = await app.events.head()
        found = await app.events.streams(prefix, after=after, limit=STREAMS_PAGE + 1)
        streams = [
            {"stream": row.stream, "version": row.version, "updated_at": row.updated_at,
             "category": category_of(row.stream)}
            for row in found[:STREAMS_PAGE]
        ]  # fmt: skip
        projections = [
            _projection(await app.projections.status(name))
            for name in sorted(app.projections.registered)
        ]
        rows = await app.backend.subscriptions.page(
            app.namespace, after=subs_after, limit=SUBSCRIPTIONS_PAGE + 1
        )
        subscriptions = [subscription_document(row, head) for row in rows[:SUBSCRIPTIONS_PAGE]]
        more_streams = found[STREAMS_PAGE - 1].stream if len(found) > STREAMS_PAGE else None
        more_subs = rows[SUBSCRIPTIONS_PAGE - 1].name if len(rows) > SUBSCRIPTIONS_PAGE else None
        return self.shell.page(
            "events.html", session, title="Event streams", current="/ui/events", head=head,
            prefix=prefix, streams=streams, projections=projections, subscriptions=subscriptions,
            next_streams=None if more_streams is None
            else _link("/ui/events", prefix=prefix, after=more_streams),
            next_subscriptions=None if more_subs is None
            else _link("/ui/events", subscriptions_after=more_subs),
        )  # fmt: skip

    async def stream_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        stream = check_stream(request.path_params["stream"])
        start = _version(text_arg(request, "start", 20))
        found = await app.events.read_stream(stream, start=start, limit=EVENTS_PAGE + 1)
        page = found[:EVENTS_PAGE]
        version = await app.events.stream_version(stream)
        here = f"/ui/events/streams/{urllib.parse.quote(stream, safe='')}"
        following = page[-1].version + 1 if len(found) > EVENTS_PAGE else None
        earlier = max(1, start - EVENTS_PAGE) if start > 1 else None
        return self.shell.page(
            "events_stream.html", session, title=f"Stream {stream}", current="/ui/events",
            stream=stream, category=category_of(stream), version=version,
            events=[event_document(e) for e in page],
            next_page=None if following is None else _link(here, start=str(following)),
            previous_page=None if earlier is None else _link(here, start=str(earlier)),
            last_page=_link(here, start=str(max(1, version - EVENTS_PAGE + 1))),
        )  # fmt: skip

    async def subscription_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        name = check_subscription_text(request.path_params["name"])
        after = _position(text_arg(request, "after", 20))
        storage = app.backend.subscriptions
        found = await storage.get(app.namespace, name)
        if found is None:
            raise SubscriptionNotFound(f"there is no subscription {name!r}", subscription=name)
        head = await app.events.head()
        rows = await storage.parked(app.namespace, name, after=after, limit=PARKED_PAGE + 1)
        here = f"/ui/events/subscriptions/{urllib.parse.quote(name, safe='')}"
        following = rows[PARKED_PAGE - 1].position if len(rows) > PARKED_PAGE else None
        return self.shell.page(
            "events_subscription.html", session, title=f"Subscription {name}",
            current="/ui/events", subscription=subscription_document(found, head),
            parked=[parked_document(row) for row in rows[:PARKED_PAGE]],
            next_page=None if following is None else _link(here, after=str(following)),
        )  # fmt: skip


def _projection(status: dict[str, Any]) -> dict[str, Any]:
    """A projection's status as a row: its current generation's checkpoint, lag,
    failures and parked events, and what it is doing, in words."""
    current = status.get("current") or {}
    if status.get("building") is not None:
        rebuild = status.get("rebuild") or {}
        doing = f"rebuilding generation {status['building']} ({rebuild.get('lag', 0)} behind)"
    elif current.get("failures"):
        doing = f"failing at position {current.get('failing_position')}"
    elif current.get("lag"):
        doing = "catching up"
    else:
        doing = "caught up"
    return {"name": status["name"], "generation": status["generation"], "state": doing,
            "position": current.get("position", 0), "lag": current.get("lag", 0),
            "failures": current.get("failures", 0), "parked": current.get("parked", 0),
            "last_error": current.get("last_error"), "holder": current.get("holder")}  # fmt: skip


def _link(path: str, **query: str) -> str:
    return f"{path}?{urllib.parse.urlencode({k: v for k, v in query.items() if v})}"


def _position(text: str) -> int:
    """``?after=``: a global position from 0 (default 0)."""
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or int(text) > MAX_POSITION:
        raise ValidationError(f"after is a position from 0 to {MAX_POSITION}, got {text!r}")
    return int(text)


def _version(text: str) -> int:
    """``?start=``: a stream version from 1 (default 1)."""
    if not text:
        return 1
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_POSITION:
        raise ValidationError(f"start is a stream version from 1 to {MAX_POSITION}, got {text!r}")
    return int(text)
