"""Checks on keys, TTLs and values, each failing with an error that names the problem."""

from __future__ import annotations

import json
import math
from typing import Any

from statekeeper.constants import MAX_KEY_BYTES, MAX_TTL_SECONDS, MAX_VALUE_DEPTH
from statekeeper.errors import (
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    StorageError,
    ValidationError,
    ValueTooLarge,
)

# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def check_key(key: object) -> str:
    if type(key) is not str:
        raise InvalidKey(f"key must be a string, got {type(key).__name__}", key=repr(key))
    if not key:
        raise InvalidKey("key must not be empty")
    if key.isascii():  # O(1) in CPython: one byte a character, no surrogates
        size = len(key)
    else:
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
    if isinstance(ttl, int) and ttl > MAX_TTL_SECONDS:  # before float() can overflow
        raise InvalidTTL(f"ttl must be at most {MAX_TTL_SECONDS} seconds (100 years)")
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidTTL(f"ttl must be a positive number of seconds, got {ttl!r}", ttl=repr(ttl))
    if ttl > MAX_TTL_SECONDS:
        raise InvalidTTL(f"ttl must be at most {MAX_TTL_SECONDS} seconds (100 years)")
    return float(ttl)


def check_text(
    what: str, text: object, *, allow_empty: bool = False, max_length: int = MAX_KEY_BYTES
) -> str:
    """A short text (an ETag, a prefix, a dedup id, a group): a string of at most
    ``max_length`` characters, without NUL, that encodes as UTF-8."""
    if not isinstance(text, str) or (not text and not allow_empty):
        raise ValidationError(f"{what} must be a non-empty string, got {text!r}")
    if len(text) > max_length or "\x00" in text:
        raise ValidationError(f"{what} {text[:64]!r} is too long or contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} {text!r} is not valid Unicode text") from None
    return text


def _check_structure(subject: str, value: Any, depth: int) -> None:
    """Refuse what JSON would silently change (non-string object keys) or what
    could not be read back at any stack depth (very deep nesting)."""
    if depth > MAX_VALUE_DEPTH:
        raise InvalidValue(f"{subject} is nested deeper than {MAX_VALUE_DEPTH} levels")
    if isinstance(value, dict):
        for name, item in value.items():
            if type(name) is not str:
                raise InvalidValue(
                    f"{subject} has an object key {name!r} of type "
                    f"{type(name).__name__}; JSON object keys must be strings"
                )
            if isinstance(item, dict | list | tuple):
                _check_structure(subject, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, dict | list | tuple):
                _check_structure(subject, item, depth + 1)


def encode_value(key: str, value: Any, max_bytes: int, subject: str | None = None) -> bytes:
    """The value as compact UTF-8 JSON, within ``max_bytes``; errors name ``subject``
    (default: the value for ``key``)."""
    subject = subject or f"value for key {key!r}"
    if isinstance(value, dict | list | tuple):
        try:
            _check_structure(subject, value, 1)
        except RecursionError:
            raise InvalidValue(f"{subject} is nested too deeply") from None
    try:
        data = _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{subject} holds invalid Unicode text") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(f"{subject} is not JSON-serializable: {exc}") from None
    if len(data) > max_bytes:
        raise ValueTooLarge(
            f"{subject} is {len(data)} bytes as JSON; the limit is {max_bytes}",
            size=len(data),
            limit=max_bytes,
        )
    return data


def decode_value(key: str, data: bytes) -> Any:
    # Decoding first is twice as fast as handing bytes to json.loads, which sniffs
    # the encoding in Python.
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise StorageError(
            f"the stored value of key {key!r} is not readable JSON: {exc}", key=key
        ) from None
