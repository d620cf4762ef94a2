"""Dapr's state routes over HTTP (``/v1.0/state/...``), on ``DaprState``.

POST   /v1.0/state/{store}               save an array of items
GET    /v1.0/state/{store}/{key}         the value (204 when missing)
DELETE /v1.0/state/{store}/{key}         delete (If-Match: only that version)
POST   /v1.0/state/{store}/bulk          several keys at once
POST   /v1.0/state/{store}/transaction   upserts and deletes, all or nothing
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.sidecar.context import Sidecar
from statekeeper.sidecar.errors import DaprError, malformed
from statekeeper.sidecar.http_common import answers_dapr_errors, metadata, read_json
from statekeeper.sidecar.state import (
    DeleteItem,
    Entry,
    SaveItem,
    concurrency,
    consistency,
)
from statekeeper.sidecar.values import is_json, stored_json, user_json, value_bytes

CODE = "ERR_MALFORMED_REQUEST"


def state_routes(sidecar: Sidecar) -> list[Route]:
    state = sidecar.state
    limit = sidecar.config.max_body_bytes

    async def save(request: Request) -> Response:
        store = request.path_params["store"]
        state.component(store)
        body = await read_json(request, limit)
        if not isinstance(body, list):
            raise malformed("the request body must be a JSON array of state items")
        url = metadata(request)  # the URL's metadata wins over an item's own, as in Dapr
        items = [_save_item(entry, ({}, url), f"item {i}") for i, entry in enumerate(body)]
        await state.save(store, items)
        return Response(status_code=204)

    async def get(request: Request) -> Response:
        consistent = consistency(request.query_params.get("consistency"), CODE)
        entry = await state.get(
            request.path_params["store"], request.path_params["key"], consistent=consistent
        )
        if not entry.found:
            return Response(status_code=204)
        headers = {"ETag": entry.etag or ""}
        for name, value in entry.metadata.items():
            headers[f"metadata.{name}"] = value
        return Response(
            value_bytes(entry.value),
            headers=headers,
            media_type="application/json" if is_json(entry.value) else "application/octet-stream",
        )

    async def delete(request: Request) -> Response:
        consistency(request.query_params.get("consistency"), CODE)
        item = DeleteItem(
            request.path_params["key"],
            request.headers.get("if-match"),
            metadata(request),
            concurrency(request.query_params.get("concurrency"), CODE),
        )
        await state.delete(request.path_params["store"], item)
        return Response(status_code=204)

    async def bulk(request: Request) -> Response:
        store = request.path_params["store"]
        state.component(store)
        body = await read_json(request, limit)
        if not isinstance(body, dict):
            raise malformed('the request body must be a JSON object: {"keys": [...]}')
        keys = body.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise malformed('"keys" must be an array of strings')
        parallelism = body.get("parallelism")
        if parallelism is not None and (
            isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 0
        ):
            raise malformed('"parallelism" must be a non-negative integer')
        entries = await state.bulk_get(store, keys)
        return JSONResponse([_bulk_entry(e) for e in entries])

    async def transaction(request: Request) -> Response:
        store = request.path_params["store"]
        state.component(store)
        body = await read_json(request, limit)
        if not isinstance(body, dict):
            raise malformed('the request body must be a JSON object: {"operations": [...]}')
        operations = body.get("operations")
        if not isinstance(operations, list):
            raise malformed('"operations" must be an array')
        # The body's metadata under each operation's own, the URL's over both.
        shared = (_string_map(body.get("metadata"), "metadata"), metadata(request))
        ops: list[SaveItem | DeleteItem] = []
        for i, op in enumerate(operations):
            where = f"operation {i}"
            if not isinstance(op, dict):
                raise malformed(f"{where} must be an object")
            kind = op.get("operation")
            request_body = op.get("request")
            if not isinstance(request_body, dict):
                raise malformed(f'{where}: "request" must be an object')
            if kind == "upsert":
                ops.append(_save_item(request_body, shared, where))
            elif kind == "delete":
                ops.append(_delete_item(request_body, shared, where))
            else:
                raise DaprError(
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    f"{where}: operation type {str(kind)[:40]} not supported: upsert or delete",
                )
        await state.transaction(store, ops)
        return Response(status_code=204)

    return [
        Route("/v1.0/state/{store}", answers_dapr_errors(save), methods=["POST", "PUT"]),
        Route("/v1.0/state/{store}/bulk", answers_dapr_errors(bulk), methods=["POST", "PUT"]),
        Route(
            "/v1.0/state/{store}/transaction",
            answers_dapr_errors(transaction),
            methods=["POST", "PUT"],
        ),
        Route("/v1.0/state/{store}/{key:path}", answers_dapr_errors(get), methods=["GET"]),
        Route("/v1.0/state/{store}/{key:path}", answers_dapr_errors(delete), methods=["DELETE"]),
    ]


Shared = tuple[dict[str, str], dict[str, str]]  # metadata under and over an item's own


def _save_item(entry: object, shared: Shared, where: str) -> SaveItem:
    if not isinstance(entry, dict):
        raise malformed(f"{where} must be an object with a key and a value")
    key, etag, options, metadata = _request(entry, shared, where)
    consistency(options.get("consistency"), CODE)
    return SaveItem(
        key,
        stored_json(entry.get("value")),
        etag,
        metadata,
        concurrency(options.get("concurrency"), CODE),
    )


def _delete_item(entry: dict[str, Any], shared: Shared, where: str) -> DeleteItem:
    key, etag, options, metadata = _request(entry, shared, where)
    return DeleteItem(key, etag, metadata, concurrency(options.get("concurrency"), CODE))


def _request(
    entry: dict[str, Any], shared: Shared, where: str
) -> tuple[str, str | None, dict[str, Any], dict[str, str]]:
    """The key, ETag, options and metadata (the item's own between ``shared``'s two)
    of an item."""
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise malformed(f'{where}: "key" must be a non-empty string')
    etag = entry.get("etag")
    if etag is not None and not isinstance(etag, str):
        raise malformed(f'{where}: "etag" must be a string')
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise malformed(f'{where}: "options" must be an object')
    return (
        key,
        etag,
        options,
        {**shared[0], **_string_map(entry.get("metadata"), f"{where}: metadata"), **shared[1]},
    )


def _string_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise malformed(f"{what} must be an object of strings")
    out = {}
    for name, item in value.items():
        if isinstance(item, bool):
            item = str(item).lower()
        elif isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            raise malformed(f"{what}: {name!r} must be a string")
        out[name] = item
    return out


def _bulk_entry(entry: Entry) -> dict[str, Any]:
    if not entry.found:
        return {"key": entry.key}
    out: dict[str, Any] = {"key": entry.key, "etag": entry.etag}
    if is_json(entry.value):
        out["data"] = user_json(entry.value)
    else:  # bytes: as text when they are UTF-8, else as base64 (JSON holds no raw bytes)
        data = value_bytes(entry.value)
        try:
            out["data"] = data.decode("utf-8")
        except UnicodeDecodeError:
            out["data"] = base64.b64encode(data).decode()
    if entry.metadata:
        out["metadata"] = entry.metadata
    return out
