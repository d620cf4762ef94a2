"""The ASGI application, and ``serve``: HTTP API and workers in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.constants import INTERNAL_QUEUE_PREFIX
from statekeeper.errors import StatekeeperError
from statekeeper.http.config import HttpConfig
from statekeeper.http.edge import (
    Edge,
    bound_address,
    check_tls,
    describe,
    exposure_warnings,
    listen,
)
from statekeeper.http.ingress import Ingress
from statekeeper.http.openapi import document
from statekeeper.http.read_timeouts import timed_protocol
from statekeeper.http.responses import error_response, from_error, json_response
from statekeeper.http.workflows import WorkflowRoutes
from statekeeper.runtime.worker import Worker

if TYPE_CHECKING:
    from statekeeper.app import App

log = logging.getLogger("statekeeper.http")


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def create_http_app(app: App, config: HttpConfig) -> Starlette:
    """The HTTP API of ``app`` (which must be opened before requests arrive)."""
    ingress = Ingress(app, config)
    flows = WorkflowRoutes(app, ingress)

    async def healthz(request: Request) -> Response:
        try:
            await app.backend.queues.next_due(app.namespace, f"{INTERNAL_QUEUE_PREFIX}health")
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return json_response(document(app.queue_names(), sorted(app.workflows.registry)))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def client_gone(request: Request, exc: Exception) -> Response:
        # Not an error: the client left (or was too slow) before its request was read.
        log.info(
            "client disconnected before its request was read", extra={"path": request.url.path}
        )
        return error_response(400, "client_disconnected", "the client disconnected")

    async def unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StatekeeperError):
            return from_error(exc)
        log.exception("unexpected error serving a request", extra={"path": request.url.path})
        return error_response(500, "internal", "internal error")

    return Starlette(
        routes=[
            Route("/v1/queues/{queue}/messages", ingress.post_message, methods=["POST"]),
            Route("/v1/requests/{id}", ingress.get_request, methods=["GET"]),
            Route("/v1/workflows/{name}", flows.start, methods=["POST"]),
            Route("/v1/workflows/{name}/{id}", flows.describe, methods=["GET"]),
            Route("/v1/workflows/{name}/{id}/events/{event}", flows.event, methods=["POST"]),
            Route("/v1/workflows/{name}/{id}/cancel", flows.cancel, methods=["POST"]),
            Route("/v1/callbacks/{token}", flows.callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: http_error,
            ClientDisconnect: client_gone,
            Exception: unexpected,
        },
    )


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
    http = _QuietServer(
        uvicorn.Config(
            create_http_app(app, config),
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=timed_protocol(edge.header_timeout, edge.body_timeout),
            ssl_certfile=edge.tls_cert,
            ssl_keyfile=edge.tls_key,
        )
    )
    worker = Worker(app, grace=grace) if workers else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    auth = config.token is not None
    addresses = [bound_address(sock) for sock in sockets]
    for warning in exposure_warnings(addresses, tls=edge.tls, auth=auth):
        log.warning(warning)
        if announce is not None:
            announce(warning)
    consumers = [c.queue for c in app.consumers.values()] if workers else []
    workflows = sorted(app.workflows.registry) if workers else []
    line = describe(addresses, tls=edge.tls, auth=auth, consumers=consumers, workflows=workflows)
    log.info(line, extra={"tls": edge.tls, "auth": auth, "workers": workers})
    if announce is not None:
        announce(line)
    tasks = [asyncio.create_task(http.serve(sockets=sockets))]
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run()))
    await asyncio.wait(
        [asyncio.create_task(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED
    )
    http.should_exit = True  # stop accepting; in-flight requests finish
    if worker is not None:
        worker.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
