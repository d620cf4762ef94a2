"""The sidecar's HTTP server: Dapr's v1.0 API as one ASGI app.

    state.py / http_state.py   /v1.0/state/...
    query.py / http_query.py   /v1.0-alpha1/state/{store}/query
    parts (pub/sub, workflows) add their own routes
    here                       /v1.0/healthz, /v1.0/healthz/outbound, /v1.0/metadata

Unknown routes answer 404 in Dapr's error shape; with an API token configured,
every route but the health probes needs the ``dapr-api-token`` header.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.sidecar.context import DAPR_RUNTIME_VERSION, Sidecar
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.http_common import ApiToken, answers_dapr_errors, error_response
from statekeeper.sidecar.http_query import query_routes
from statekeeper.sidecar.http_state import state_routes


def create_sidecar_http(sidecar: Sidecar) -> Starlette:
    async def healthz(request: Request) -> Response:
        if sidecar.stopping:
            return error_response(
                DaprError("ERR_HEALTH_NOT_READY", "dapr is not ready", http_status=500)
            )
        return Response(status_code=204)

    async def outbound(request: Request) -> Response:
        return Response(status_code=204)

    async def get_metadata(request: Request) -> Response:
        return JSONResponse(metadata_document(sidecar))

    routes = [
        Route("/v1.0/healthz", healthz, methods=["GET"]),
        Route("/v1.0/healthz/outbound", outbound, methods=["GET"]),
        Route("/v1.0/metadata", answers_dapr_errors(get_metadata), methods=["GET"]),
        *state_routes(sidecar),
        *query_routes(sidecar),
    ]
    for part in sidecar.parts:
        routes.extend(part.routes())
    token = sidecar.config.api_token
    return Starlette(
        routes=routes,
        middleware=[Middleware(ApiToken, token=token)] if token else [],
        exception_handlers={HTTPException: _http_error},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        problem = DaprError("ERR_METHOD_NOT_ALLOWED", "method not allowed", http_status=405)
    else:
        problem = DaprError(
            "ERR_NOT_FOUND", f"no route {request.url.path[:200]}", http_status=exc.status_code
        )
    return error_response(problem)


def metadata_document(sidecar: Sidecar) -> dict[str, Any]:
    """What ``GET /v1.0/metadata`` (and gRPC GetMetadata) answer."""
    components = [
        {
            "name": c.name,
            "type": c.type,
            "version": c.version,
            "capabilities": _capabilities(c.kind),
        }
        for c in sidecar.config.resources.components
    ]
    document: dict[str, Any] = {
        "id": sidecar.app_id,
        "runtimeVersion": DAPR_RUNTIME_VERSION,
        "enabledFeatures": [],
        "actors": [],
        "components": components,
        "extended": {"daprRuntimeVersion": DAPR_RUNTIME_VERSION, "statekeeper": "sidecar"},
        "subscriptions": [],
        "httpEndpoints": [],
    }
    if sidecar.config.app_port is not None:
        document["appConnectionProperties"] = {
            "port": sidecar.config.app_port,
            "protocol": "http",
            "channelAddress": sidecar.config.app_host,
        }
    for part in sidecar.parts:
        part.describe(document)
    return document


def _capabilities(kind: str) -> list[str]:
    if kind == "state":
        return ["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR"]
    if kind == "pubsub":
        return ["BULK_PUBLISH"]
    return []
