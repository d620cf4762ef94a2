"""The ASGI application, and ``serve``: HTTP API and workers in one process.

The API is the routes of one module per surface, assembled here:

    ingress.py          POST /v1/queues/{queue}/messages
    request_status.py   GET  /v1/requests/{id}
    events.py           /v1/events/... (the event store, projections, subscriptions)
    workflows.py        /v1/workflows/...
    callbacks.py        POST /v1/callbacks/{token}
    health.py           GET  /healthz, /readyz
    openapi.py          GET  /openapi.json
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from statekeeper.http.application import build, uvicorn_server
from statekeeper.http.callbacks import CallbackRoutes
from statekeeper.http.config import HttpConfig
from statekeeper.http.edge import (
    Edge,
    bound_address,
    check_tls,
    describe,
    exposure_warnings,
    listen,
)
from statekeeper.http.entities import EntityRoutes
from statekeeper.http.events import EventRoutes
from statekeeper.http.flow import FlowRoutes
from statekeeper.http.health import Readiness, health_operations
from statekeeper.http.ingress import Ingress
from statekeeper.http.metrics import metrics_operation
from statekeeper.http.openapi import openapi_operation
from statekeeper.http.operations import Operation
from statekeeper.http.request_status import RequestStatusRoutes
from statekeeper.http.schedules import ScheduleRoutes
from statekeeper.http.sfn import StepFunctionsRoutes
from statekeeper.http.streams import StreamRoutes
from statekeeper.http.ui.pages import Dashboard
from statekeeper.http.uploads import UploadRoutes
from statekeeper.http.workflow_messages import WorkflowMessageRoutes
from statekeeper.http.workflow_search import SearchRoutes
from statekeeper.http.workflow_versions import WorkflowVersionRoutes
from statekeeper.http.workflows import WorkflowRoutes

if TYPE_CHECKING:
    from statekeeper.app import App

log = logging.getLogger("statekeeper.http")


def api_operations(
    app: App, config: HttpConfig, readiness: Readiness | None = None
) -> list[Operation]:
    """Every route of the HTTP API of ``app``, the document's own included."""
    operations = [
        *Ingress(app, config).operations(),
        *RequestStatusRoutes(app).operations(),
        *StreamRoutes(app, config).operations(),
        *EventRoutes(app, config).operations(),
        *SearchRoutes(app, config).operations(),
        *WorkflowRoutes(app, config).operations(),
        *WorkflowVersionRoutes(app, config).operations(),
        *WorkflowMessageRoutes(app, config).operations(),
        *FlowRoutes(app).operations(),
        *ScheduleRoutes(app, config).operations(),
        *EntityRoutes(app, config).operations(),
        *CallbackRoutes(app, config).operations(),
        *UploadRoutes(app, config).operations(),
        *StepFunctionsRoutes(app, config).operations(),
        *health_operations(readiness or Readiness(app)),
        metrics_operation(app.with_views),
    ]
    operations.append(openapi_operation(lambda: operations))
    return operations


def create_http_app(app: App, config: HttpConfig, readiness: Readiness | None = None) -> Starlette:
    """The HTTP API of ``app`` (which must be opened before requests arrive), and the
    dashboard at /ui (its pages sign in on their own: http/ui/)."""
    served = build(api_operations(app, config, readiness), config.token)
    served.router.routes.extend(Dashboard(app, config).routes())
    return served


async def serve(
    app: App,
    config: HttpConfig,
    edge: Edge | None = None,
    *,
    workers: bool = True,
    grace: float = 30.0,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the HTTP API (and, with ``workers``, run the consumers) until SIGTERM/SIGINT.

    The TLS files are checked and the socket bound before the app opens, so a bad
    file or a port in use fails at once. ``announce`` gets the line saying what runs
    and any warnings (they are logged as well)."""
    edge = edge or Edge()
    if edge.tls_cert and edge.tls_key:
        check_tls(edge.tls_cert, edge.tls_key)
    sockets = listen(edge.host, edge.port)
    try:
        async with app:
            await _serve_on(app, config, edge, sockets, workers, grace, announce)
    finally:
        for sock in sockets:
            sock.close()


async def _serve_on(
    app: App,
    config: HttpConfig,
    edge: Edge,
    sockets: list[socket.socket],
    workers: bool,
    grace: float,
    announce: Callable[[str], None] | None,
) -> None:
    readiness = Readiness(app, stopping=lambda: app.runtime is None or app.runtime.stopping)
    http = uvicorn_server(
        create_http_app(app, config, readiness),
        header_timeout=edge.header_timeout,
        body_timeout=edge.body_timeout,
        tls_cert=edge.tls_cert,
        tls_key=edge.tls_key,
        grace=grace,
    )
    runtime = app.runtime
    assert runtime is not None
    runtime.grace = grace
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runtime.stop)
    auth = config.token is not None
    addresses = [bound_address(sock) for sock in sockets]
    for warning in exposure_warnings(addresses, tls=edge.tls, auth=auth):
        log.warning(warning)
        if announce is not None:
            announce(warning)
    if workers:  # known by name before the banner says so
        await app.workflows.definitions.announce(list(app.workflows.registry))
    consumers = [c.queue for c in app.consumers.values()] if workers else []
    workflows = sorted(app.workflows.runnable()) if workers else []
    line = describe(
        addresses, tls=edge.tls, auth=auth, consumers=consumers, workflows=workflows,
        namespace=app.namespace, database=app.url.described(),
    )  # fmt: skip
    log.info(line, extra={"tls": edge.tls, "auth": auth, "workers": workers})
    if announce is not None:
        announce(line)
    if workers:
        runtime.start(app.worker(grace=grace))
        app.start_projections()
        app.start_schedules()
    runtime.start(HttpService(http, sockets))  # stopped first: no new requests
    await runtime.wait()
    if runtime.failure is not None:
        raise runtime.failure


class HttpService:
    """The HTTP server as a supervised service: on stop it accepts no more requests
    (readiness says so) and lets those in flight finish."""

    name = "http"

    def __init__(self, server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        self.server = server
        self.sockets = sockets

    async def run(self, stopping: asyncio.Event) -> None:
        serving = asyncio.create_task(self.server.serve(sockets=self.sockets))
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        self.server.should_exit = True
        await serving
