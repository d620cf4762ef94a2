"""Choice rules of JSONPath states: comparisons, their ``Path`` forms, ``And`` /
``Or`` / ``Not`` and the ``Is*`` tests, as Step Functions evaluates them.

A comparison of values of the wrong type is false (``StringEquals`` of a number);
a rule whose ``Variable`` is missing fails the state (only ``IsPresent`` asks that).
Timestamps are compared as instants (RFC 3339 text); ``StringMatches`` takes ``*``
as any run of characters and ``\\*`` as a star.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from statekeeper.asl import jsonpath
from statekeeper.asl.dataflow import Scope, select
from statekeeper.asl.failure import RUNTIME, DataError

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)
_KINDS = {"String": str, "Numeric": (int, float), "Boolean": bool, "Timestamp": str}


def timestamp(value: Any) -> datetime | None:
    """The instant an RFC 3339 timestamp names, or None if it is not one."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return None
    text = value.upper().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def matches(rule: dict[str, Any], data: Any, scope: Scope) -> bool:
    """Whether ``rule`` holds for the state's input ``data``."""
    if "And" in rule:
        return all(matches(inner, data, scope) for inner in rule["And"])
    if "Or" in rule:
        return any(matches(inner, data, scope) for inner in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data, scope)
    variable = rule.get("Variable", "$")
    if "IsPresent" in rule:
        try:
            select(variable, data, scope)
        except jsonpath.PathNotFound:
            return rule["IsPresent"] is False
        return rule["IsPresent"] is True
    value = _operand(variable, data, scope)
    for test in ("IsNull", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"):
        if test in rule:
            return _is(test, value) is rule[test]
    for key, operand in rule.items():
        if key in ("Variable", "Next", "Assign", "Output", "Comment"):
            continue
        if key.endswith("Path"):
            key = key[: -len("Path")]
            operand = _operand(operand, data, scope)
        return compare(key, value, operand)
    return False


def _operand(path: str, data: Any, scope: Scope) -> Any:
    """The value a rule's path selects; a missing one fails the state, as on AWS."""
    try:
        return select(path, data, scope)
    except jsonpath.PathNotFound:
        raise DataError(
            RUNTIME,
            f"Invalid path '{path}': The choice state's condition path references an "
            "invalid value.",
        ) from None


def _is(test: str, value: Any) -> bool:
    if test == "IsNull":
        return value is None
    if test == "IsNumeric":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if test == "IsString":
        return isinstance(value, str)
    if test == "IsBoolean":
        return isinstance(value, bool)
    return timestamp(value) is not None


def compare(operator: str, value: Any, operand: Any) -> bool:
    """``value <operator> operand``, e.g. ``compare("NumericLessThan", 3, 5)``."""
    kind = next(k for k in _KINDS if operator.startswith(k))
    op = operator[len(kind) :]
    if kind == "Boolean":
        return isinstance(value, bool) and isinstance(operand, bool) and value == operand
    if kind == "Numeric":
        numeric = (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return False
        if isinstance(operand, bool) or not isinstance(operand, numeric):
            return False
        return _ordered(op, value, operand)
    if kind == "Timestamp":
        left, right = timestamp(value), timestamp(operand)
        if left is None or right is None:
            return False
        return _ordered(op, left, right)
    if not isinstance(value, str) or not isinstance(operand, str):
        return False
    if op == "Matches":
        return _pattern(operand).fullmatch(value) is not None
    return _ordered(op, value, operand)


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "Equals":
        return bool(left == right)
    if op == "LessThan":
        return bool(left < right)
    if op == "GreaterThan":
        return bool(left > right)
    if op == "LessThanEquals":
        return bool(left <= right)
    return bool(left >= right)


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            parts.append(re.escape(text[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.DOTALL)
