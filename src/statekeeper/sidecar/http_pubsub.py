"""Dapr's publish routes over HTTP, on ``DaprPubSub``.

POST|PUT /v1.0/publish/{pubsub}/{topic...}              one event (204)
POST|PUT /v1.0-alpha1/publish/bulk/{pubsub}/{topic...}  several events (also /v1.0/):
         204 when all were published; else {"failedEntries": [...], "errorCode": ...}
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.http.body import read_body
from statekeeper.sidecar.cloudevents import bare_type, is_binary_type, is_cloudevent_type
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.http_common import answers_dapr_errors, metadata, read_json

if TYPE_CHECKING:
    from statekeeper.sidecar.pubsub import BulkEntry, DaprPubSub

EVENTS_CODE = "ERR_PUBSUB_EVENTS_SER"
MAX_BULK_ENTRIES = 1000


def pubsub_routes(pubsub: DaprPubSub) -> list[Route]:
    limit = pubsub.sidecar.config.max_body_bytes

    async def publish(request: Request) -> Response:
        name, topic = request.path_params["pubsub"], request.path_params["topic"]
        pubsub.component(name)
        data = await read_body(request, limit)
        await pubsub.publish(
            name,
            topic,
            data,
            request.headers.get("content-type"),
            metadata(request),
            traceparent=_header(request, "traceparent"),
            tracestate=_header(request, "tracestate"),
        )
        return Response(status_code=204)

    async def bulk(request: Request) -> Response:
        name, topic = request.path_params["pubsub"], request.path_params["topic"]
        pubsub.component(name)
        try:
            body = await read_json(request, limit)
        except DaprError as problem:
            if problem.http_status == 413:
                raise
            raise _events_error(topic, problem.message) from None
        entries = bulk_entries(body, topic)
        try:
            failed = await pubsub.bulk_publish(name, topic, entries, metadata(request))
        except DaprError as problem:  # the commit failed: no entry was published
            if problem.code != "ERR_PUBSUB_PUBLISH_MESSAGE":
                raise
            failed = [(e.entry_id, problem.message) for e in entries]
            return _failed_entries(failed, problem.http_status)
        if not failed:
            return Response(status_code=204)
        # Entries refused for their own content (metadata, a bad event) are the client's
        # error; the others were published.
        return _failed_entries(failed, 400)

    routes = [
        Route(
            "/v1.0/publish/{pubsub}/{topic:path}",
            answers_dapr_errors(publish),
            methods=["POST", "PUT"],
        ),
    ]
    for version in ("v1.0-alpha1", "v1.0"):
        routes.append(
            Route(
                f"/{version}/publish/bulk/{{pubsub}}/{{topic:path}}",
                answers_dapr_errors(bulk),
                methods=["POST", "PUT"],
            )
        )
    # The bulk routes first: /v1.0/publish/bulk/... is a bulk publish, not a topic "bulk/...".
    return routes[1:] + routes[:1]


def bulk_entries(body: Any, topic: str) -> list[BulkEntry]:
    """Dapr's bulk publish body (an array of entries) as BulkEntry values; a body that
    is not one is ERR_PUBSUB_EVENTS_SER."""
    from statekeeper.sidecar.pubsub import BulkEntry

    if not isinstance(body, list):
        raise _events_error(topic, "the body must be a JSON array of entries")
    if len(body) > MAX_BULK_ENTRIES:
        raise _events_error(topic, f"a bulk publish holds at most {MAX_BULK_ENTRIES} entries")
    entries: list[BulkEntry] = []
    seen: set[str] = set()
    for index, entry in enumerate(body):
        where = f"entry {index}"
        if not isinstance(entry, dict):
            raise _events_error(topic, f"{where} must be an object")
        entry_id = entry.get("entryId")
        if not isinstance(entry_id, str) or not entry_id:
            raise _events_error(topic, f"{where}: entryId is required")
        if entry_id in seen:
            raise _events_error(topic, f"{where}: entryId {entry_id[:80]!r} is duplicated")
        seen.add(entry_id)
        content_type = entry.get("contentType")
        if content_type is not None and not isinstance(content_type, str):
            raise _events_error(topic, f"{where}: contentType must be a string")
        if "event" not in entry:
            raise _events_error(topic, f"{where}: event is required")
        event = entry["event"]
        chosen = content_type or ("text/plain" if isinstance(event, str) else "application/json")
        data = _event_bytes(event, chosen, topic, where)
        entry_metadata = entry.get("metadata") or {}
        if not isinstance(entry_metadata, dict) or not all(
            isinstance(v, str) for v in entry_metadata.values()
        ):
            raise _events_error(topic, f"{where}: metadata must be an object of strings")
        entries.append(BulkEntry(entry_id, data, chosen, dict(entry_metadata)))
    return entries


def _event_bytes(event: Any, content_type: str, topic: str, where: str) -> bytes:
    bare = bare_type(content_type)
    if is_binary_type(bare):
        if not isinstance(event, str):
            raise _events_error(topic, f"{where}: an {bare} event must be a base64 string")
        try:
            return base64.b64decode(event, validate=True)
        except binascii.Error:
            raise _events_error(topic, f"{where}: the event is not valid base64") from None
    if bare == "application/json" or is_cloudevent_type(bare):
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    if bare.startswith("text/") or bare == "application/xml":
        if not isinstance(event, str):
            raise _events_error(topic, f"{where}: a {bare} event must be a string")
        return event.encode("utf-8", errors="replace")
    raise _events_error(topic, f"{where}: content type {content_type[:80]!r} is not supported")


def _events_error(topic: str, message: str) -> DaprError:
    return DaprError(
        EVENTS_CODE, f"error when unmarshaling the request for topic {topic[:200]}: {message}"
    )


def _failed_entries(failed: list[tuple[str, str]], status: int) -> Response:
    answer = {
        "failedEntries": [{"entryId": e, "error": error} for e, error in failed],
        "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
    }
    return JSONResponse(answer, status_code=status)


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name, "")
    return value if value.isascii() and value.isprintable() and len(value) <= 512 else ""
