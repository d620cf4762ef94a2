"""Intrinsic functions of the Amazon States Language: what a parsed call evaluates to.

``evaluate(call, resolve)`` runs a tree from ``intrinsics.parse``: inner calls first,
then the function on the values of its arguments. ``resolve(path_text)`` gives the
value of a path argument; its own exceptions pass through untouched. A function that
refuses its arguments raises ``IntrinsicFailure`` with the States error name and a
cause; the interpreter puts "An error occurred while executing the state ..." before
the cause.

What AWS Step Functions does, as its recorded executions (the conformance cases) show:

- States.Format renders strings raw and null, booleans and numbers as JSON does, but
  an object or an array as Java prints a map or a list: ``{a=1, b=[x, y]}``. ``\\{``
  and ``\\}`` in the template are literal braces; each ``{}`` takes the next value.
- States.MathAdd rounds each fraction half up first, as Java's Math.round does:
  MathAdd(1.5, 1.51) is 2 + 2 = 4, MathAdd(-1.5, 0) is -1. Its result is an integer.
- States.StringSplit splits at any one of the delimiter's characters and drops empty
  pieces (a Java StringTokenizer): StringSplit('a,,b;c', ',;') is [a, b, c].
- States.StringToJson of an empty or blank string is null.
- States.ArrayRange includes the end when a step lands on it.

Inferred from that Java implementation, as no recorded execution shows them: the
error name and causes (no recorded call fails); the same rounding for every integer
argument (MathRandom, ArrayRange, ArrayGetItem, ArrayPartition); Java's equality in
ArrayContains and ArrayUnique (an integer never equals a double: 1 and 1.0 differ;
object keys unordered); doubles written as Java writes them (1.0E20, 1.0E-4) by Format
and by JsonToString, whose JSON is compact; and a seeded MathRandom drawing as
java.util.Random's nextInt(end - start) + start, the end excluded.

Results may share nested values with what ``resolve`` returned; nothing here mutates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from statekeeper.asl import intrinsics

ERROR = "States.IntrinsicFailure"  # the States Language's name for these failures
MAX_RANGE = 1000  # items States.ArrayRange may make
MAX_TEXT = 10_000  # characters (UTF-16 units) Base64Encode, Base64Decode and Hash take
HASHES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
_JAVA_INT = 2**31


class IntrinsicFailure(Exception):
    """An intrinsic call failed at run time: ``error`` is the States error name,
    ``cause`` what went wrong (without the interpreter's "An error occurred while
    executing the state ..." prefix)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


def evaluate(call: intrinsics.Call, resolve: Callable[[str], Any]) -> Any:
    """The value of ``call``; ``resolve(path_text)`` gives the value of a path argument."""
    values = [
        _argument(argument, resolve, raw=call.name == "States.Format" and index == 0)
        for index, argument in enumerate(call.arguments)
    ]
    return _FUNCTIONS[call.name](_Arguments(call.name, values))


def _argument(argument: intrinsics.Argument, resolve: Callable[[str], Any], raw: bool) -> Any:
    if isinstance(argument, intrinsics.Call):
        return evaluate(argument, resolve)
    if isinstance(argument, intrinsics.Path):
        return resolve(argument.text)
    value = argument.value
    if isinstance(value, str) and not raw:  # the parser keeps \{ and \} for Format
        return value.replace("\\{", "{").replace("\\}", "}")
    return value


class _Arguments:
    """The values a function got, read by position (1-based in messages) and type."""

    def __init__(self, name: str, values: list[Any]) -> None:
        self.name = name
        self.values = values

    def fail(self, detail: str) -> IntrinsicFailure:
        return IntrinsicFailure(ERROR, f"{self.name}: {detail}")

    def _wrong(self, position: int, wanted: str) -> IntrinsicFailure:
        return self.fail(
            f"argument {position + 1} must be {wanted}, not {_described(self.values[position])}"
        )

    def array(self, position: int) -> list[Any]:
        value = self.values[position]
        if not isinstance(value, list):
            raise self._wrong(position, "an array")
        return value

    def object(self, position: int) -> dict[str, Any]:
        value = self.values[position]
        if not isinstance(value, dict):
            raise self._wrong(position, "an object")
        return value

    def string(self, position: int, *, limit: int | None = None) -> str:
        value = self.values[position]
        if not isinstance(value, str):
            raise self._wrong(position, "a string")
        if limit is not None and _java_length(value) > limit:
            raise self.fail(
                f"argument {position + 1} has {_java_length(value)} characters;"
                f" at most {limit} are allowed"
            )
        return value

    def boolean(self, position: int) -> bool:
        value = self.values[position]
        if not isinstance(value, bool):
            raise self._wrong(position, "a boolean")
        return value

    def integer(self, position: int) -> int:
        """A number as an integer: a fraction rounds half up, as Java's Math.round."""
        value = self.values[position]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(position, "a number")
        if isinstance(value, float):
            whole = math.floor(value)
            return whole + 1 if value - whole >= 0.5 else whole
        return value


def _format(arguments: _Arguments) -> str:
    template = arguments.string(0)
    pieces: list[str] = []  # literal text, and a slot for each value
    slots: list[int] = []  # where the values go in pieces
    at, literal = 0, []
    while at < len(template):
        if template[at] == "\\" and template[at + 1 : at + 2] in ("{", "}"):
            literal.append(template[at + 1])
            at += 2
        elif template.startswith("{}", at):
            pieces.append("".join(literal))
            literal = []
            slots.append(len(pieces))
            pieces.append("")
            at += 2
        else:
            literal.append(template[at])
            at += 1
    pieces.append("".join(literal))
    values = arguments.values[1:]
    if len(slots) != len(values):
        raise arguments.fail(
            f"the template has {len(slots)} placeholder(s) {{}} but {len(values)} value(s)"
            " follow it"
        )
    for slot, value in zip(slots, values, strict=True):
        pieces[slot] = _java_text(value)
    return "".join(pieces)


def _string_to_json(arguments: _Arguments) -> Any:
    text = arguments.string(0)
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise arguments.fail(f"the string is not JSON ({exc}): {_shown(text)}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _array_partition(arguments: _Arguments) -> list[list[Any]]:
    items, size = arguments.array(0), arguments.integer(1)
    if size <= 0:
        raise arguments.fail(f"the chunk size must be a positive integer, not {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def _array_contains(arguments: _Arguments) -> bool:
    wanted = _key(arguments.values[1])
    return any(_key(item) == wanted for item in arguments.array(0))


def _array_range(arguments: _Arguments) -> list[int]:
    start, end, step = (arguments.integer(position) for position in range(3))
    if step == 0:
        raise arguments.fail("the step must not be 0")
    span = end - start if step > 0 else start - end
    count = span // abs(step) + 1 if span >= 0 else 0
    if count > MAX_RANGE:
        raise arguments.fail(f"the range would have {count} items; at most {MAX_RANGE} are allowed")
    return [start + step * index for index in range(count)]


def _array_get_item(arguments: _Arguments) -> Any:
    items, index = arguments.array(0), arguments.integer(1)
    if not 0 <= index < len(items):
        raise arguments.fail(
            f"the index {index} is out of bounds for an array of {len(items)} item(s)"
        )
    return items[index]


def _array_unique(arguments: _Arguments) -> list[Any]:
    seen: set[Any] = set()
    unique = []
    for item in arguments.array(0):
        key = _key(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _base64_encode(arguments: _Arguments) -> str:
    data = arguments.string(0, limit=MAX_TEXT).encode("utf-8", "surrogatepass")
    return base64.b64encode(data).decode("ascii")


def _base64_decode(arguments: _Arguments) -> str:
    text = arguments.string(0, limit=MAX_TEXT)
    try:  # padding may be left out, as Java's decoder allows
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise arguments.fail(f"the string is not Base64: {_shown(text)}") from None
    return data.decode("utf-8", "replace")


def _hash(arguments: _Arguments) -> str:
    data, algorithm = arguments.string(0, limit=MAX_TEXT), arguments.string(1)
    if algorithm not in HASHES:
        raise arguments.fail(f"the algorithm {_shown(algorithm)} is not one of {', '.join(HASHES)}")
    return hashlib.new(HASHES[algorithm], data.encode("utf-8", "surrogatepass")).hexdigest()


def _json_merge(arguments: _Arguments) -> dict[str, Any]:
    first, second, deep = arguments.object(0), arguments.object(1), arguments.boolean(2)
    if deep:
        raise arguments.fail("only the shallow merge is supported: argument 3 must be false")
    return {**first, **second}


def _math_random(arguments: _Arguments) -> int:
    start, end = arguments.integer(0), arguments.integer(1)
    if not 0 < end - start < _JAVA_INT:
        raise arguments.fail(
            f"the end ({end}) must be greater than the start ({start}), by less than {_JAVA_INT}"
        )
    if len(arguments.values) < 3:
        return random.randrange(start, end)
    return start + _JavaRandom(arguments.integer(2)).next_int(end - start)


def _string_split(arguments: _Arguments) -> list[str]:
    text, delimiters = arguments.string(0), arguments.string(1)
    if not delimiters:
        return [text] if text else []
    return [piece for piece in re.split(f"[{re.escape(delimiters)}]", text) if piece]


_FUNCTIONS: dict[str, Callable[[_Arguments], Any]] = {
    "States.Format": _format,
    "States.StringToJson": _string_to_json,
    "States.JsonToString": lambda arguments: _json_text(arguments.values[0]),
    "States.Array": lambda arguments: list(arguments.values),
    "States.ArrayPartition": _array_partition,
    "States.ArrayContains": _array_contains,
    "States.ArrayRange": _array_range,
    "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": lambda arguments: len(arguments.array(0)),
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode,
    "States.Base64Decode": _base64_decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": lambda arguments: arguments.integer(0) + arguments.integer(1),
    "States.StringSplit": _string_split,
    "States.UUID": lambda arguments: str(uuid.uuid4()),
}
assert _FUNCTIONS.keys() == intrinsics.FUNCTIONS.keys()


class _JavaRandom:
    """java.util.Random, so that a seed gives the number AWS gives."""

    _MULTIPLIER, _MASK = 0x5DEECE66D, (1 << 48) - 1

    def __init__(self, seed: int) -> None:
        self.seed = (seed ^ self._MULTIPLIER) & self._MASK

    def next(self, bits: int) -> int:  # bits <= 31: never negative
        self.seed = (self.seed * self._MULTIPLIER + 0xB) & self._MASK
        return self.seed >> (48 - bits)

    def next_int(self, bound: int) -> int:
        drawn = self.next(31)
        if bound & (bound - 1) == 0:
            return (bound * drawn) >> 31
        while drawn - drawn % bound + bound - 1 >= _JAVA_INT:  # Java's int overflow
            drawn = self.next(31)
        return drawn % bound


def _key(value: Any) -> Any:
    """A hashable stand-in for a JSON value: equal exactly when Java's equals is."""
    if isinstance(value, dict):
        return ("object", frozenset((name, _key(item)) for name, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_key(item) for item in value))
    return (type(value).__name__, value)


def _java_text(value: Any) -> str:
    """A value as Java's toString writes it: strings raw, maps {k=v, ...}, lists [a, b]."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name}={_java_text(item)}" for name, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    return _json_text(value)


def _json_text(value: Any) -> str:
    """Compact JSON, doubles written as Java writes them."""
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, dict):
        members = (f"{_json_text(name)}:{_json_text(item)}" for name, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _java_double(value: float) -> str:
    """Java's Double.toString: 1.0, 1.1, 1.0E20, 1.0E-4 (the shortest digits that read
    back as the same double, at least two)."""
    if not math.isfinite(value):
        return json.dumps(value)
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    if len(digits) == 1:  # Java writes two digits then: the nearest to the exact value
        exact = Decimal(value)
        sign, digits, exponent = round(exact, 1 - exact.adjusted()).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # digits before the decimal point
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            body = "0." + "0" * -point + text
        elif point >= len(text):
            body = text + "0" * (point - len(text)) + ".0"
        else:
            body = text[:point] + "." + text[point:]
    else:
        body = f"{text[0]}.{text[1:] or '0'}E{point - 1}"
    return ("-" if sign else "") + body


def _java_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _described(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int | float):
        kind = "number"
    else:
        kind = (
            "string" if isinstance(value, str) else "array" if isinstance(value, list) else "object"
        )
    return f"the {kind} {_shown(value)}"


def _shown(value: Any) -> str:
    text = _json_text(value)
    return text if len(text) <= 100 else text[:97] + "..."
