"""Checks on keys, TTLs and values, each failing with an error that names the problem."""

from __future__ import annotations

import json
import math
from typing import Any

from statekeeper.constants import MAX_KEY_BYTES
from statekeeper.errors import InvalidKey, InvalidTTL, InvalidValue, ValueTooLarge

# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def check_key(key: object) -> str:
    if type(key) is not str:
        raise InvalidKey(f"key must be a string, got {type(key).__name__}", key=repr(key))
    if not key:
        raise InvalidKey("key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"key {key!r} is not valid Unicode text (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(
            f"key is {size} bytes long; the limit is {MAX_KEY_BYTES}", key=key[:64] + "..."
        )
    if "\x00" in key:
        raise InvalidKey(f"key {key!r} contains a NUL character", key=key)
    return key


def check_ttl(ttl: object) -> float | None:
    """The TTL in seconds, or None; rejects booleans, strings, zero, negatives, NaN."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidTTL(
            f"ttl must be a number of seconds, got {ttl!r} ({type(ttl).__name__})", ttl=repr(ttl)
        )
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidTTL(f"ttl must be a positive number of seconds, got {ttl!r}", ttl=repr(ttl))
    return float(ttl)


def encode_value(key: str, value: Any, max_bytes: int) -> bytes:
    """The value as compact UTF-8 JSON, within ``max_bytes``."""
    try:
        data = _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"value for key {key!r} holds invalid Unicode text", key=key) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(
            f"value for key {key!r} is not JSON-serializable: {exc}", key=key
        ) from None
    if len(data) > max_bytes:
        raise ValueTooLarge(
            f"value for key {key!r} is {len(data)} bytes as JSON; the limit is {max_bytes}",
            key=key,
            size=len(data),
            limit=max_bytes,
        )
    return data


def decode_value(data: bytes) -> Any:
    # Decoding first is twice as fast as handing bytes to json.loads, which sniffs
    # the encoding in Python.
    return json.loads(data.decode("utf-8"))
