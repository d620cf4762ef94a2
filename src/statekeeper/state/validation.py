"""Checks on keys, TTLs and short texts, each failing with an error that names the problem.

Values are encoded and checked by ``statekeeper.codec``."""

from __future__ import annotations

import math

from statekeeper.constants import MAX_KEY_BYTES, MAX_TTL_SECONDS
from statekeeper.errors import InvalidKey, InvalidTTL, ValidationError
from statekeeper.identifiers import has_control, shown, utf8_length


def check_key(key: object) -> str:
    if type(key) is not str:
        raise InvalidKey(f"key must be a string, got {type(key).__name__}", key=repr(key))
    if not key:
        raise InvalidKey("key must not be empty")
    size = utf8_length(key)
    if size is None:
        raise InvalidKey(f"key {shown(key)} is not valid Unicode text (lone surrogate)")
    if size > MAX_KEY_BYTES:
        raise InvalidKey(
            f"key is {size} bytes long; the limit is {MAX_KEY_BYTES}", key=key[:64] + "..."
        )
    if has_control(key):
        raise InvalidKey(
            f"key {shown(key)} holds a control character (C0 or DEL); keys are text", key=key
        )
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
    """A short text of the state store (an ETag given as ``if_match``): a string of at
    most ``max_length`` characters, without NUL, that encodes as UTF-8. Identifiers
    have their own checks in ``statekeeper.identifiers``, listing filters in the store."""
    if not isinstance(text, str) or (not text and not allow_empty):
        raise ValidationError(f"{what} must be a non-empty string, got {text!r}")
    if len(text) > max_length or "\x00" in text:
        raise ValidationError(f"{what} {text[:64]!r} is too long or contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} {text!r} is not valid Unicode text") from None
    return text
