"""Bearer-token authentication, as ASGI middleware around every route but the open ones.

The routes that need no token are listed here and nowhere else (``OPEN_PATHS``):
probes (``/healthz``, ``/readyz``), callback answers, whose signed token in the
path is their credential, and the Step Functions API, whose requests carry an AWS
signature (or the bearer token), checked by its route (``http/sfn.py``). The API's
description (``/openapi.json``) needs the token: it names the app's queues and
workflows. The server wraps every other route in ``BearerAuth``; no other handler
checks a credential itself, and the OpenAPI document marks the same routes as open.
The dashboard's pages at ``/ui`` are not API routes: they sign in with the token once
and then check their own session cookie (``http/ui/session.py``).
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from statekeeper.http.responses import error_response

OPEN_PATHS: frozenset[str] = frozenset(
    {
        "/healthz",
        "/readyz",
        "/v1/callbacks/{token}",  # the signed token is the credential
        "/v1/uploads/{id}/content",  # the signed URL is the credential (http/uploads.py)
        "/",  # the Step Functions API: its requests are signed (http/sfn.py checks them)
    }
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="statekeeper"'}


def is_open(path: str) -> bool:
    """Whether the route ``path`` (its template, as routed) is served without a token."""
    return path in OPEN_PATHS


class BearerAuth:
    """Let a request through only with ``Authorization: Bearer <token>`` (compared in
    constant time); answer anything else 401 with a ``WWW-Authenticate`` challenge."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = _authorization(scope)
        if header is not None:
            scheme, _, given = header.partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
                await self.app(scope, receive, send)
                return
        message = "missing bearer token" if not header else "invalid bearer token"
        await error_response(401, "unauthorized", message, CHALLENGE)(scope, receive, send)


def _authorization(scope: Scope) -> bytes | None:
    """The first Authorization header's value, if any."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None
