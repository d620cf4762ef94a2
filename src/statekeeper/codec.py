"""The JSON codec and the value limits every block shares (a ground module).

``encode_value``: a Python value as compact UTF-8 JSON, within a size limit and
``MAX_VALUE_DEPTH`` levels of nesting. Beyond JSON's own types it writes dataclasses
and pydantic models (as objects), datetimes, dates and times (ISO 8601), UUIDs and
Decimals (as strings), enums (their values), sets (arrays) and bytes (URL-safe
base64; inside a pydantic model, as the model's configuration says).
``decode_value``: bytes this process stored back into a JSON value; ``decode_as``: into
the type a function declares (``result_type``, ``parameter_type``), so those values come
back as they went in.
``decode_json``: untrusted bytes (an HTTP body, a CLI value) into a value, strictly,
so whatever a door accepts can be stored, echoed back as a result and read back:

- UTF-8 only: a byte order mark, UTF-16/32, invalid UTF-8 and lone surrogate
  escapes (``"\\ud800"``) are refused;
- no ``NaN``/``Infinity`` and no number beyond a 64-bit float (``1e999``), no
  integer with more digits than Python converts;
- at most ``MAX_VALUE_DEPTH`` levels of nesting, checked on the text without
  recursion.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import math
import operator
import sys
import typing
from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from statekeeper.constants import MAX_VALUE_DEPTH
from statekeeper.errors import InvalidValue, MalformedJSON, StorageError, ValueTooLarge


def _jsonable(value: Any) -> Any:
    """The JSON form of a value of the codec's extra types (the encoder's fallback,
    called only for what JSON itself cannot write)."""
    try:
        return to_jsonable_python(value, bytes_mode="base64")
    except PydanticSerializationError as exc:
        raise TypeError(str(exc)) from None


# Built once: json.dumps/loads with options build a new encoder/decoder on every call.
_ENCODER = json.JSONEncoder(
    allow_nan=False, separators=(",", ":"), ensure_ascii=False, default=_jsonable
)

_BOM = b"\xef\xbb\xbf"
# Every byte but brackets and quotes, deleted by bytes.translate to leave the structure.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_NOT_OPENER = bytes(b for b in range(256) if b not in b"[{")
_OPENERS_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_BRACKET_WEIGHTS = bytes.maketrans(b"[]", b"\x02\x00")
_PASSES = 6  # passes of pair removal before counting the depth in one go


class _Refused(ValueError):
    """A number or constant that JSON must not carry; raised from the decoder's hooks."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"holds {name}, which is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        shown = text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} characters)"
        raise _Refused(f"holds the number {shown}, beyond the range of a 64-bit float (±1.8e308)")
    return number


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)


# --- encoding -------------------------------------------------------------------------


# Containers, as a tuple: isinstance against a tuple is twice as fast as against a union.
_CONTAINERS = (dict, list, tuple)
_SEQUENCES = (list, tuple)


def _check_structure(subject: str, value: Any, depth: int) -> bool:
    """Refuse what JSON would silently change (non-string object keys) or what
    could not be read back at any stack depth (very deep nesting). True if the value
    holds a string longer than ``_SLICE`` (written a slice at a time: ``_write``)."""
    if depth > MAX_VALUE_DEPTH:
        raise InvalidValue(f"{subject} is nested deeper than {MAX_VALUE_DEPTH} levels")
    long = False
    if isinstance(value, dict):
        for name, item in value.items():
            if type(name) is not str:
                raise InvalidValue(
                    f"{subject} has an object key {name!r} of type "
                    f"{type(name).__name__}; JSON object keys must be strings"
                )
            if isinstance(item, _CONTAINERS):
                long = _check_structure(subject, item, depth + 1) or long
            elif isinstance(item, str) and len(item) > _SLICE:
                long = True
    elif isinstance(value, _SEQUENCES):
        for item in value:
            if isinstance(item, _CONTAINERS):
                long = _check_structure(subject, item, depth + 1) or long
            elif isinstance(item, str) and len(item) > _SLICE:
                long = True
    return long


# Strings longer than this are escaped and encoded a slice at a time, into the output:
# a 100 MiB string becomes 100 MiB of JSON without a 100 MiB JSON text in between.
_SLICE = 1 << 20
_escape = json.encoder.encode_basestring  # what the encoder writes (ensure_ascii=False)
# The bytes JSON escapes in a string (besides these, UTF-8 text is written as it is): in
# UTF-8 they stand only for themselves. A slice without them is copied, not escaped
# (three times faster on a 64 MiB string).
_ESCAPED = bytes([*range(0x20), ord('"'), ord("\\")])


def _write(value: Any, out: bytearray) -> None:
    """``value`` as compact UTF-8 JSON, appended to ``out``: the encoder's output, but
    long strings go in slices (JSON escapes each character on its own)."""
    if isinstance(value, str) and len(value) > _SLICE:
        out += b'"'
        for start in range(0, len(value), _SLICE):
            piece = value[start : start + _SLICE]
            raw = piece.encode("utf-8")
            if len(raw.translate(None, _ESCAPED)) != len(raw):
                raw = _escape(piece)[1:-1].encode("utf-8")
            out += raw
        out += b'"'
    elif isinstance(value, dict):
        out += b"{"
        for n, (name, item) in enumerate(value.items()):
            if n:
                out += b","
            out += _escape(name).encode("utf-8")
            out += b":"
            _write(item, out)
        out += b"}"
    elif isinstance(value, _SEQUENCES):
        out += b"["
        for n, item in enumerate(value):
            if n:
                out += b","
            _write(item, out)
        out += b"]"
    else:
        out += _ENCODER.encode(value).encode("utf-8")


def encode_value(key: str, value: Any, max_bytes: int, subject: str | None = None) -> bytes:
    """The value as compact UTF-8 JSON, within ``max_bytes``; errors name ``subject``
    (default: the value for ``key``)."""
    subject = subject or f"value for key {key!r}"
    long = isinstance(value, str) and len(value) > _SLICE
    if isinstance(value, _CONTAINERS):
        try:
            long = _check_structure(subject, value, 1)
        except RecursionError:
            raise InvalidValue(f"{subject} is nested too deeply") from None
    data: bytes
    try:
        if long:  # no whole JSON text beside the value and its bytes
            written = bytearray()
            _write(value, written)
            data = written  # type: ignore[assignment]  # bytes-like, never copied whole
        else:
            data = _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{subject} holds invalid Unicode text (a lone surrogate)") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(f"{subject} is not JSON-serializable: {exc}") from None
    if len(data) > max_bytes:
        raise ValueTooLarge(
            f"{subject} is {len(data)} bytes as JSON; the limit is {max_bytes}",
            size=len(data),
            limit=max_bytes,
        )
    return data


# --- decoding -------------------------------------------------------------------------


def decode_value(key: str, data: bytes) -> Any:
    """A value this process stored (checked on its way in); StorageError if unreadable."""
    # Decoding first is twice as fast as handing bytes to json.loads, which sniffs
    # the encoding in Python.
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise StorageError(
            f"the stored value of key {key!r} is not readable JSON: {exc}", key=key
        ) from None


# --- declared types -----------------------------------------------------------------

# Hints that take any JSON value as it is: nothing to convert.
_ANY_HINTS: tuple[Any, ...] = (Any, object, inspect.Parameter.empty)


def decode_as(data: bytes, hint: Any, subject: str) -> Any:
    """A value this process stored, as type ``hint`` (None: as JSON). InvalidValue
    naming ``subject`` and the mismatch (never the value) when it does not fit."""
    if hint is None or hint in _ANY_HINTS:
        return decode_value(subject, data)
    return _validated(_box_of(hint), b'{"value":' + data + b"}", hint, subject)


def decode_pieces_as(pieces: list[str], hint: Any, subject: str) -> Any:
    """``decode_as`` of a stored value read as pieces of text (a payload stored out of
    line): the pieces are joined once and the list emptied, so memory holds the text
    and the value, never a second copy of either."""
    if hint is None or hint in _ANY_HINTS:
        text = "".join(pieces)
        pieces.clear()
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise StorageError(f"{subject} is not readable JSON: {exc}") from None
    text = "".join(['{"value":', *pieces, "}"])
    pieces.clear()
    return _validated(_box_of(hint), text, hint, subject)


def _box_of(hint: Any) -> Any:
    try:
        return _box(hint)
    except TypeError:  # not hashable: built each time
        return _box.__wrapped__(hint)


def _validated(box: Any, document: str | bytes, hint: Any, subject: str) -> Any:
    from pydantic import ValidationError

    try:
        return box.model_validate_json(document).value
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'the value'}: {problem['msg']}"
            for problem in exc.errors(include_url=False, include_input=False)[:3]
        )
        raise InvalidValue(f"{subject} is not a {_hint_name(hint)}: {problems}") from None


@functools.lru_cache(maxsize=512)
def _box(hint: Any) -> Any:
    """A model of one field of type ``hint`` that reads bytes as base64, as they are
    written (built once per type: building one takes a millisecond)."""
    from pydantic import ConfigDict, create_model

    config = ConfigDict(val_json_bytes="base64", ser_json_bytes="base64")
    return create_model("Value", value=(hint, ...), __config__=config)


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def result_type(fn: Callable[..., Any]) -> Any:
    """The type ``fn`` declares it returns (an async function: what awaiting it gives);
    None when it declares none, or its hints cannot be resolved."""
    return _hints(fn).get("return")


def parameter_type(fn: Callable[..., Any], index: int) -> Any:
    """The type ``fn`` declares for its positional parameter ``index``; None when none."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if index >= len(parameters):
        return None
    return _hints(fn).get(parameters[index].name)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return _resolved_hints(fn)
    except TypeError:  # not hashable
        return _resolved_hints.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _resolved_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = inspect.unwrap(fn)
    try:
        return typing.get_type_hints(target)
    except Exception:  # a forward reference that does not resolve: no declared types
        return {}


def decode_json(data: bytes, subject: str) -> Any:
    """Untrusted ``data`` as a JSON value, strictly (see the module's docstring);
    MalformedJSON naming ``subject``, what is wrong and the limit otherwise."""
    if data.startswith(_BOM):
        raise MalformedJSON(f"{subject} starts with a byte order mark; send UTF-8 without one")
    if b"\x00" in data:
        raise MalformedJSON(
            f"{subject} holds NUL bytes (UTF-16 or UTF-32?); only UTF-8 JSON is accepted"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(
            f"{subject} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "only UTF-8 JSON is accepted"
        ) from None
    # Nesting first: refusing deep input before the decoder builds it is cheaper.
    escaped = b"\\" in data
    if not _nesting_within_limit(data, escaped):
        raise _too_deep(subject)
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise _too_deep(subject) from None
    except _Refused as exc:
        raise MalformedJSON(f"{subject} {exc}") from None
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"{subject} is not JSON: {exc}") from None
    except ValueError:  # only integer conversion raises a plain ValueError
        raise MalformedJSON(
            f"{subject} holds an integer of more than {sys.get_int_max_str_digits()} digits"
        ) from None
    if escaped and b"\\ud" in data.lower():  # a \uD800-\uDFFF escape, maybe lone
        try:  # a pair decodes to one character; a lone half does not encode
            _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedJSON(
                f"{subject} holds a lone surrogate escape (\\ud800-\\udfff outside a pair); "
                "it is not Unicode text"
            ) from None
    return value


def _too_deep(subject: str) -> MalformedJSON:
    return MalformedJSON(f"{subject} is nested deeper than {MAX_VALUE_DEPTH} levels")


def _nesting_within_limit(data: bytes, escaped: bool) -> bool:
    """Whether JSON ``data`` nests at most MAX_VALUE_DEPTH levels, found on the text
    in a few passes of C string operations (no recursion, no per-byte Python). Exact
    for valid JSON; for invalid JSON either answer ends in a MalformedJSON."""
    if _fewer_openers(data, MAX_VALUE_DEPTH + 1):
        return True  # too few brackets to nest that deep, wherever they are
    if escaped and b'\\"' in data:  # an escaped quote (or backslash before a quote)
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_STRUCTURE)
    brackets = structure.translate(_OPENERS_AS_BRACKETS, b'"')
    if structure.count(b'""') * 2 != len(structure) - len(brackets):
        # A run of quotes of odd length: a bracket lies inside a string. Keep the
        # parts between strings only.
        brackets = b"".join(structure.split(b'"')[::2]).translate(_OPENERS_AS_BRACKETS)
    # Each pass removes the innermost pairs, one level: shallow JSON empties in a few.
    for _ in range(_PASSES):
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return True
    # Deeper: the running depth in one pass. With "[" as 2 and "]" as 0, the depth after
    # k brackets is their running sum minus k.
    sums = itertools.accumulate(brackets.translate(_BRACKET_WEIGHTS))
    deepest: int = max(map(operator.sub, sums, itertools.count(1)))
    return deepest + _PASSES <= MAX_VALUE_DEPTH


def _fewer_openers(data: bytes, limit: int) -> bool:
    """Whether ``data`` has fewer than ``limit`` opening brackets: counted in its first
    8 KiB, then found one by one (memchr-fast, stopping at ``limit``)."""
    head = 8192
    found = len(data[:head].translate(None, _NOT_OPENER))
    if found >= limit:
        return False
    for opener in b"[{":
        at = data.find(opener, head)
        while at >= 0:
            found += 1
            if found >= limit:
                return False
            at = data.find(opener, at + 1)
    return True
