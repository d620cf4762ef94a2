"""Dapr's state query route over HTTP, on ``query.run_query``.

POST|PUT /v1.0-alpha1/state/{store}/query   one page: {"results": [...], "token": "..."}

Each result is ``{"key", "data", "etag"}``: ``data`` is the JSON value (a value saved as
bytes that are not JSON is its base64 text). As Dapr does, a query with no result
answers 204 without a body.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.sidecar.context import Sidecar
from statekeeper.sidecar.http_common import answers_dapr_errors, metadata, read_json
from statekeeper.sidecar.query import QueryItem, failed, run_query
from statekeeper.sidecar.values import BYTES, is_json, user_json

QUERY_PATH = "/v1.0-alpha1/state/{store}/query"


def query_routes(sidecar: Sidecar) -> list[Route]:
    state = sidecar.state
    limit = sidecar.config.max_body_bytes

    async def query(request: Request) -> Response:
        store = request.path_params["store"]
        state.component(store)
        body = await read_json(request, limit)
        if not isinstance(body, dict):
            raise failed(store, "the query must be a JSON object")
        result = await run_query(state, store, body, metadata(request))
        if not result.results:
            return Response(status_code=204)
        answer: dict[str, Any] = {"results": [_item(item) for item in result.results]}
        if result.token:
            answer["token"] = result.token
        return JSONResponse(answer)

    return [Route(QUERY_PATH, answers_dapr_errors(query), methods=["POST", "PUT"])]


def _item(item: QueryItem) -> dict[str, Any]:
    stored = item.value
    data = user_json(stored) if is_json(stored) else stored[BYTES]
    shown: dict[str, Any] = {"key": item.key, "data": data, "etag": item.etag}
    if item.error:
        shown["error"] = item.error
    return shown
