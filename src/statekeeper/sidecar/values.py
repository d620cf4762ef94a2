"""How Dapr's byte-string values live in statekeeper's JSON store, and the checks
every state operation shares (keys, ETags, TTL metadata).

Dapr state values are bytes: the HTTP API saves a JSON value as its JSON text, the
gRPC API saves whatever bytes it is given. Here a value whose bytes are JSON is
stored as that JSON value (so statekeeper readers and the query API see a document;
it reads back as compact JSON of the same meaning, as Dapr's SQL stores do), and any
other bytes as ``{"$bytes": "<base64>"}``, read back exactly. A stored object whose
only member is ``$bytes`` or ``$json`` would be ambiguous, so such a JSON value is
wrapped once more as ``{"$json": <value>}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from statekeeper.codec import decode_json
from statekeeper.constants import MAX_TTL_SECONDS
from statekeeper.errors import MalformedJSON
from statekeeper.sidecar.components import KEY_SEPARATOR
from statekeeper.sidecar.errors import DaprError

BYTES = "$bytes"
JSON = "$json"
TTL_METADATA = "ttlInSeconds"
TTL_EXPIRE_METADATA = "ttlExpireTime"
# statekeeper's ETags: 12 characters of URL-safe base64 (store.new_etag).
_ETAG = re.compile(r"[A-Za-z0-9_-]{12}")


def stored_json(value: Any) -> Any:
    """A JSON value (of the HTTP API) as it is stored."""
    if isinstance(value, dict) and len(value) == 1 and (BYTES in value or JSON in value):
        return {JSON: value}
    return value


def stored_bytes(data: bytes) -> Any:
    """Bytes (of the gRPC API) as they are stored: the JSON they hold, when it is JSON
    within statekeeper's limits (UTF-8, nesting, no lone surrogate), else base64."""
    try:
        parsed = decode_json(data, "the value")
    except MalformedJSON:
        return {BYTES: base64.b64encode(data).decode()}
    return stored_json(parsed)


def value_bytes(stored: Any) -> bytes:
    """The bytes a stored value reads back as."""
    if isinstance(stored, dict) and len(stored) == 1:
        if BYTES in stored and isinstance(stored[BYTES], str):
            try:
                return base64.b64decode(stored[BYTES], validate=True)
            except binascii.Error:
                pass
        elif JSON in stored:
            stored = stored[JSON]
    return json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode()


def is_json(stored: Any) -> bool:
    return not (isinstance(stored, dict) and len(stored) == 1 and BYTES in stored)


def user_json(stored: Any) -> Any:
    """The JSON document of a stored value (queries filter on it), None for bytes."""
    if isinstance(stored, dict) and len(stored) == 1:
        if BYTES in stored:
            return None
        if JSON in stored:
            return stored[JSON]
    return stored


def check_state_key(key: object, code: str) -> str:
    """A Dapr state key: non-empty text without ``||`` (Dapr's key separator)."""
    if not isinstance(key, str) or not key:
        raise DaprError(code, "a state key must be a non-empty string")
    if KEY_SEPARATOR in key:
        raise DaprError(code, f"input key/keyPrefix '{key}' can't contain '{KEY_SEPARATOR}'")
    return key


def check_etag(etag: object, code: str) -> str | None:
    """An ETag (None or empty: none given); one that no write here could have made is
    a 400, a stale one a conflict later."""
    if etag is None or etag == "":
        return None
    if not isinstance(etag, str) or not _ETAG.fullmatch(etag):
        raise DaprError(code, f"invalid etag value: {str(etag)[:80]!r}")
    return etag


def ttl_seconds(metadata: dict[str, str], code: str) -> float | None:
    """``ttlInSeconds`` of request metadata: None for none (absent, ``-1`` or ``0``,
    which Dapr also reads as "never expires"); a positive number of seconds; anything
    else (not an integer, below -1, past 100 years) a 400."""
    raw = metadata.get(TTL_METADATA)
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    try:
        seconds = int(text)
    except ValueError:
        raise DaprError(
            code, f"incorrect value for metadata '{TTL_METADATA}': {text[:40]!r} is not an integer"
        ) from None
    if seconds < -1:
        raise DaprError(
            code, f"incorrect value for metadata '{TTL_METADATA}': {seconds}; must be -1 or greater"
        )
    if seconds > MAX_TTL_SECONDS:
        raise DaprError(
            code, f"incorrect value for metadata '{TTL_METADATA}': at most {MAX_TTL_SECONDS}"
        )
    return float(seconds) if seconds > 0 else None


def expire_time(expires_at: float | None) -> str | None:
    """An expiry as Dapr reports it (``ttlExpireTime``): RFC 3339 in UTC."""
    if expires_at is None:
        return None
    return datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
