"""An ASGI application from a list of operations, and the uvicorn server that runs it.

``build`` turns each ``Operation`` into a Starlette route, wraps every route that is
not open (``http/auth.py``) in the bearer-token middleware, and answers errors in
one shape: statekeeper errors with their status and code, unknown paths and methods
as JSON 404 and 405, anything unexpected as a logged 500.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.errors import StatekeeperError
from statekeeper.http.auth import BearerAuth, is_open
from statekeeper.http.metrics import RequestMetrics
from statekeeper.http.operations import Operation
from statekeeper.http.read_timeouts import timed_protocol
from statekeeper.http.responses import answer_error, error_response

log = logging.getLogger("statekeeper.http")


def build(operations: Sequence[Operation], token: str | None) -> Starlette:
    """The ASGI app serving ``operations``; with a ``token``, every route that is not
    open requires it."""
    auth = [] if token is None else [Middleware(BearerAuth, token=token)]
    routes = [
        Route(
            op.path,
            op.endpoint,
            methods=[op.method],
            middleware=None if is_open(op.path) else auth,
        )
        for op in operations
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestMetrics)],
        exception_handlers={
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            StatekeeperError: answer_error,
            Exception: _unexpected,
        },
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Not an error: the client left (or was too slow) before its request was read.
    log.info("client disconnected before its request was read", extra={"path": request.url.path})
    return error_response(400, "client_disconnected", "the client disconnected")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error serving a request", extra={"path": request.url.path})
    return error_response(500, "internal", "internal error")


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_server(
    asgi: Starlette,
    *,
    header_timeout: float = 10.0,
    body_timeout: float = 30.0,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    grace: float | None = None,
) -> QuietServer:
    """A server for ``asgi`` with statekeeper's settings: no access log, no lifespan,
    read deadlines against slow clients, HTTPS with ``tls_cert`` and ``tls_key``; on
    shutdown, requests in flight get ``grace`` seconds (None: as long as they take)."""
    return QuietServer(
        uvicorn.Config(
            asgi,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=timed_protocol(header_timeout, body_timeout),
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_graceful_shutdown=None if grace is None else max(1, math.ceil(grace)),
        )
    )
