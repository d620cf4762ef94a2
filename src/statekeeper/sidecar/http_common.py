"""What the sidecar's HTTP routes share: Dapr-shaped error answers, JSON bodies
within the size limit, ``metadata.*`` query parameters, and the API token."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from statekeeper.codec import decode_json
from statekeeper.errors import StatekeeperError
from statekeeper.http.body import read_body
from statekeeper.sidecar.errors import DaprError, malformed

log = logging.getLogger("statekeeper.sidecar")

TOKEN_HEADER = "dapr-api-token"
# Served without the token, as Dapr does: probes of the sidecar's health.
OPEN_PATHS = ("/v1.0/healthz", "/v1.0/healthz/outbound")
Endpoint = Callable[[Request], Awaitable[Response]]


def error_response(error: DaprError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.http_status)


def answers_dapr_errors(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with every error answered in Dapr's shape: DaprErrors as they
    are, other statekeeper errors by their status, anything else a logged 500."""

    async def serve(request: Request) -> Response:
        try:
            return await endpoint(request)
        except DaprError as error:
            return error_response(error)
        except StatekeeperError as error:
            status = error.http_status if error.http_status < 500 else 500
            code = "ERR_MALFORMED_REQUEST" if status < 500 else "ERR_INTERNAL"
            return error_response(DaprError(code, error.message, http_status=status))
        except Exception:
            log.exception("unexpected error serving a request", extra={"path": request.url.path})
            return error_response(DaprError("ERR_INTERNAL", "internal error", http_status=500))

    return serve


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; ERR_MALFORMED_REQUEST when it is empty or not JSON."""
    raw = await read_body(request, max_bytes)  # 413 past the limit (answers_dapr_errors)
    if not raw.strip():
        raise malformed("the request body is empty; send JSON")
    try:
        return decode_json(raw, "the request body")
    except StatekeeperError as problem:
        raise malformed(problem.message) from None


def metadata(request: Request) -> dict[str, str]:
    """The request metadata given as ``metadata.<name>`` query parameters."""
    return {
        name[len("metadata.") :]: value
        for name, value in request.query_params.items()
        if name.startswith("metadata.") and len(name) > len("metadata.")
    }


class ApiToken:
    """ASGI middleware: every request but the health probes must carry the
    ``dapr-api-token`` header with the configured token (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next(
            (v for k, v in scope["headers"] if k.decode("latin-1").lower() == TOKEN_HEADER), None
        )
        if given is not None and hmac.compare_digest(given.strip(), self.token):
            await self.app(scope, receive, send)
            return
        problem = DaprError(
            "ERR_API_UNAUTHORIZED",
            "missing api token" if given is None else "invalid api token",
            http_status=401,
        )
        await error_response(problem)(scope, receive, send)
