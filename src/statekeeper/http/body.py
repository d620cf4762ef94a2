"""Reading a request's JSON body: the size limit, strict decoding, the empty-body rule.

Every route that takes a body reads it here, so every door applies the same
limits (``statekeeper.codec.decode_json``). Errors are StatekeeperErrors (413
``payload_too_large``, 400 ``malformed_json``), answered by the route.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from statekeeper.codec import decode_json
from statekeeper.errors import MalformedJSON, PayloadTooLarge

SUBJECT = "the request body"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; PayloadTooLarge past ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int, *, required: bool) -> tuple[bytes, Any]:
    """The raw body and its JSON value. An empty (or all-whitespace) body is
    MalformedJSON when ``required``, else the value None."""
    raw = await read_body(request, max_bytes)
    if not raw.strip(b" \t\r\n"):
        if required:
            raise MalformedJSON(f"{SUBJECT} is empty; send a JSON value")
        return raw, None
    return raw, decode_json(raw, SUBJECT)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{SUBJECT} is larger than {limit} bytes", limit=limit)
