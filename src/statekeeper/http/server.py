"""The ASGI application, and ``serve``: HTTP API and workers in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.errors import StatekeeperError
from statekeeper.http.config import HttpConfig
from statekeeper.http.ingress import Ingress
from statekeeper.http.openapi import document
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
            await app.backend.queue_next_due(app.namespace, "statekeeper.health")
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return json_response(document(app.queue_names(), sorted(app.workflows.registry)))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

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
        exception_handlers={HTTPException: http_error, Exception: unexpected},
    )


async def serve(
    app: App,
    config: HttpConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: bool = True,
    grace: float = 30.0,
) -> None:
    """Serve the HTTP API (and, with ``workers``, run the consumers) until SIGTERM/SIGINT."""
    async with app:
        http = _QuietServer(
            uvicorn.Config(
                create_http_app(app, config),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        worker = Worker(app, grace=grace) if workers else None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        tasks = [asyncio.create_task(http.serve())]
        if worker is not None:
            tasks.append(asyncio.create_task(worker.run()))
        log.info("serving", extra={"host": host, "port": port, "workers": workers})
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED
        )
        http.should_exit = True  # stop accepting; in-flight requests finish
        if worker is not None:
            worker.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
