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

from statekeeper.http.body import read_body
from statekeeper.sidecar.context import DAPR_RUNTIME_VERSION, Sidecar
from statekeeper.sidecar.errors import DaprError, malformed
from statekeeper.sidecar.http_common import ApiToken, answers_dapr_errors, error_response
from statekeeper.sidecar.http_query import query_routes
from statekeeper.sidecar.http_state import state_routes

MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_BYTES = 4096


def create_sidecar_http(sidecar: Sidecar) -> Starlette:
    async def healthz(request: Request) -> Response:
        asked = request.query_params.get("appid")
        if asked is not None and asked != sidecar.app_id:
            return error_response(
                DaprError(
                    "ERR_HEALTH_APPID_NOT_MATCH", "dapr app-id does not match", http_status=500
                )
            )
        if sidecar.stopping:
            return error_response(
                DaprError("ERR_HEALTH_NOT_READY", "dapr is not ready", http_status=500)
            )
        return Response(status_code=204)

    async def outbound(request: Request) -> Response:
        return Response(status_code=204)

    async def get_metadata(request: Request) -> Response:
        return JSONResponse(metadata_document(sidecar))

    async def set_metadata(request: Request) -> Response:
        key = request.path_params["key"]
        raw = await read_body(request, MAX_ATTRIBUTE_BYTES)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise malformed("a metadata value is UTF-8 text") from None
        if key and len(sidecar.extended) >= MAX_ATTRIBUTES and key not in sidecar.extended:
            raise malformed(f"at most {MAX_ATTRIBUTES} metadata attributes")
        if key:
            sidecar.extended[key] = value
        return Response(status_code=204)

    routes = [
        Route("/v1.0/healthz", healthz, methods=["GET"]),
        Route("/v1.0/healthz/outbound", outbound, methods=["GET"]),
        Route("/v1.0/metadata", answers_dapr_errors(get_metadata), methods=["GET"]),
        Route("/v1.0/metadata/{key}", answers_dapr_errors(set_metadata), methods=["PUT"]),
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
        "extended": {**sidecar.extended, "daprRuntimeVersion": DAPR_RUNTIME_VERSION},
        "subscriptions": [],
        "httpEndpoints": [],
        "appConnectionProperties": {
            "port": sidecar.config.app_port or 0,
            "protocol": "http",
            "channelAddress": sidecar.config.app_host,
        },
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": False},
    }
    if sidecar.config.app_health_check:
        document["appConnectionProperties"]["health"] = {
            "healthCheckPath": sidecar.config.app_health_path
        }
    for part in sidecar.parts:
        part.describe(document)
    return document


def _capabilities(kind: str) -> list[str]:
    if kind == "state":
        return ["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR"]
    if kind == "pubsub":
        return ["BULK_PUBSUB", "MESSAGE_TTL"]
    return []
