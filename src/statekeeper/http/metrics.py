"""``GET /metrics`` (Prometheus text format) and the count of HTTP requests by route.

``serve`` has the route beside the API, behind the same token; ``statekeeper worker
--health-port N`` serves it beside its probes (behind ``STATEKEEPER_API_TOKEN`` when one
is set). What it holds: ``observability/scrape.py``; the alert rules that read it:
``deploy/prometheus/alerts.yml``; the guide: docs/observability.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from statekeeper.http.operations import Answer, Operation
from statekeeper.observability import metrics, tracing
from statekeeper.observability.scrape import CONTENT_TYPE, exposition

if TYPE_CHECKING:
    from statekeeper.app import App


def metrics_operation(apps: Callable[[], Iterable[App]]) -> Operation:
    """``GET /metrics`` for ``apps()`` (an app and its namespace views)."""

    async def scrape(request: Request) -> Response:
        return Response(await exposition(apps()), media_type=CONTENT_TYPE)

    return Operation(
        "GET",
        "/metrics",
        scrape,
        "Metrics in the Prometheus text format (docs/observability.md)",
        {200: Answer("The metrics", None, media_type="text/plain")},
    )


class RequestMetrics:
    """Counts and times every HTTP request by its route (the path's template, never the
    path itself: ids stay out of the labels), method and status; and, when traces are
    recorded, runs it in a server span, a child of the caller's ``traceparent`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        traced = tracing.enabled()
        if scope["type"] != "http" or not (metrics.ENABLED or traced):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        method = scope.get("method", "")

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with tracing.span(f"{method} request", parent=_traceparent(scope), kind="server",
                          attributes={"http.request.method": method}) as current:  # fmt: skip
            try:
                await self.app(scope, receive, sending)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.http_request(template, method, status, time.perf_counter() - started)
                if current is not None:
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)
                    current.set_attribute("http.response.status_code", status)


def _traceparent(scope: Scope) -> str | None:
    """The request's ``traceparent`` header, if any."""
    for name, value in scope.get("headers", ()):
        if name == b"traceparent":
            return str(value.decode("latin-1"))
    return None
