"""Searchable attributes: the values a workflow sets (``ctx.set_attributes``), and the
filters that select workflows by them (docs/workflow-search.md).

An attribute's kind follows from its value: ``keyword`` (str), ``int``, ``float``,
``bool`` or ``timestamp`` (a timezone-aware datetime). The first value set under a
name in a namespace fixes that name's kind; a value of another kind later is
AttributeKindMismatch. Filters name an attribute and either a value (equality) or
bounds (``gt``, ``gte``, ``lt``, ``lte``: numbers and timestamps only), given as Python
values or as text (``amount>=10``), which is read as the attribute's kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from statekeeper.errors import AttributeKindMismatch, InvalidFilter, ValidationError
from statekeeper.identifiers import has_control, shown
from statekeeper.storage.rows import StepRecord, UnitResult
from statekeeper.storage.search_ops import AttributeFilter, AttributeValue
from statekeeper.workflows.signals import Superseded

if TYPE_CHECKING:
    from statekeeper.storage.contracts import Storage

KINDS = ("keyword", "int", "float", "bool", "timestamp")
# The kind of a journal entry that records a ctx.set_attributes call (also its name).
ATTRIBUTES = "attributes"
MAX_ATTRIBUTES = 32  # per ctx.set_attributes call
MAX_FILTERS = 8  # attribute filters per search
MAX_KEYWORD = 1000  # characters of a keyword value
MAX_EXACT_INT = 2**53  # ints are kept as 64-bit floats: exact up to this
NAME_RULE = "1-100 characters: a letter or _, then letters, digits, _, . or -"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")
_EXPRESSION = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]{0,99})(>=|<=|=|>|<)(.*)", re.DOTALL)
_OPERATORS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "=": "eq"}
BOUNDS = ("gt", "gte", "lt", "lte")


def check_name(name: object, error: type[ValidationError] = ValidationError) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise error(f"invalid attribute name {shown(name)}: {NAME_RULE}")
    return name


def typed(attributes: object) -> list[AttributeValue]:
    """The values of a ``ctx.set_attributes`` call, each with its kind (None: unset);
    ValidationError naming the attribute that cannot be one."""
    if not isinstance(attributes, Mapping):
        raise ValidationError("ctx.set_attributes takes a dict of attribute names to values")
    if not 1 <= len(attributes) <= MAX_ATTRIBUTES:
        raise ValidationError(
            f"ctx.set_attributes takes 1 to {MAX_ATTRIBUTES} attributes, got {len(attributes)}"
        )
    return [_typed(check_name(name), value) for name, value in attributes.items()]


def _typed(name: str, value: object) -> AttributeValue:
    if value is None:
        return AttributeValue(name, "")
    if isinstance(value, bool):
        return AttributeValue(name, "bool", number=float(value))
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            raise ValidationError(f"attribute {name!r}: an int attribute is at most 2**53 in size")
        return AttributeValue(name, "int", number=float(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"attribute {name!r}: a float attribute must be finite")
        return AttributeValue(name, "float", number=value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(
                f"attribute {name!r}: a timestamp needs a time zone (datetime.now(UTC))"
            )
        return AttributeValue(name, "timestamp", number=value.timestamp())
    if isinstance(value, str):
        if len(value) > MAX_KEYWORD or "\x00" in value or has_control(value):
            raise ValidationError(
                f"attribute {name!r}: a keyword is at most {MAX_KEYWORD} characters, "
                "without control characters"
            )
        return AttributeValue(name, "keyword", text=value)
    raise ValidationError(
        f"attribute {name!r} is a {type(value).__name__}: an attribute is a str, int, "
        "float, bool, timezone-aware datetime, or None (to unset it)"
    )


def stored(kind: str, text: str | None, number: float | None) -> Any:
    """A stored attribute as its Python value."""
    if kind == "keyword":
        return text
    if number is None:
        return None
    if kind == "int":
        return int(number)
    if kind == "bool":
        return bool(number)
    if kind == "timestamp":
        return datetime.fromtimestamp(number, UTC)
    return float(number)


async def store_attributes(
    backend: Storage, namespace: str, step: StepRecord, values: list[AttributeValue], now: float
) -> UnitResult:
    """Record ``step`` (the journal entry of a ctx.set_attributes call) and set
    ``values``, in one transaction under the run's fence: what was asked of the workflow.
    Superseded if the lease was lost; AttributeKindMismatch (nothing written) if a value
    is not of its name's kind."""
    done = await backend.search.set_attributes(namespace, step, values, now)
    if done is None:
        raise await _kind_mismatch(backend, namespace, values)
    if not done.applied:
        raise Superseded()
    return done


async def _kind_mismatch(
    backend: Storage, namespace: str, values: list[AttributeValue]
) -> AttributeKindMismatch:
    """The error naming the first value whose name has another kind in ``namespace``."""
    values = [v for v in values if v.kind]
    kinds = await backend.search.kinds(namespace, [v.name for v in values])
    for value in values:
        if kinds.get(value.name, value.kind) != value.kind:
            return AttributeKindMismatch(
                f"attribute {value.name!r} holds {kinds[value.name]} values in this "
                f"namespace, not {value.kind}: use another name for another kind",
                attribute=value.name, kind=kinds[value.name],
            )  # fmt: skip
    return AttributeKindMismatch("an attribute's kind changed while it was set")


# --- filters -----------------------------------------------------------------------------


def parse_expressions(expressions: Iterable[str], parameter: str = "attr") -> dict[str, Any]:
    """Text filters (``customer=c-7``, ``amount>=10``; one name may have several bounds)
    as the dict ``search`` takes, values still text."""
    found: dict[str, Any] = {}
    for text in expressions:
        match = _EXPRESSION.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidFilter(
                f"invalid {parameter} filter {shown(text)}: write NAME=VALUE, or NAME>=VALUE, "
                "NAME>VALUE, NAME<=VALUE, NAME<VALUE for a number or timestamp "
                f"(a name is {NAME_RULE})"
            )
        name, operator, value = match.groups()
        op = _OPERATORS[operator]
        earlier = found.setdefault(name, {})
        if op in earlier or "eq" in earlier or (op == "eq" and earlier):
            raise InvalidFilter(
                f"invalid {parameter} filter {shown(text)}: attribute {name!r} is filtered twice "
                "the same way, or by a value and bounds"
            )
        earlier[op] = value
    return {name: ops["eq"] if list(ops) == ["eq"] else ops for name, ops in found.items()}


def names_of(filters: Mapping[str, Any]) -> list[str]:
    if not isinstance(filters, Mapping):
        raise InvalidFilter("attributes must be a dict of attribute names to values or bounds")
    if len(filters) > MAX_FILTERS:
        raise InvalidFilter(f"at most {MAX_FILTERS} attribute filters, got {len(filters)}")
    names = [check_name(name, InvalidFilter) for name in filters]
    for name, wanted in filters.items():
        values = wanted.values() if isinstance(wanted, Mapping) else (wanted,)
        if any(isinstance(value, str) and has_control(value) for value in values):
            raise InvalidFilter(
                f"attribute filter {name!r}: a value has a control character "
                f"({shown(wanted)}); a value is text without control characters"
            )
    return names


def compile_filters(
    filters: Mapping[str, Any], kinds: Mapping[str, str]
) -> list[AttributeFilter] | None:
    """The filters for storage, each value read as its attribute's kind (``kinds``);
    None when one names an attribute no workflow has (nothing can match)."""
    compiled = []
    for name, wanted in filters.items():
        kind = kinds.get(name)
        bounds = _bounds(name, wanted)
        if kind is None:
            continue  # checked for shape above; matches nothing
        if bounds is None:
            compiled.append(_equality(name, kind, wanted))
        else:
            compiled.append(_range(name, kind, bounds))
    return None if len(compiled) < len(filters) else compiled


def _bounds(name: str, wanted: Any) -> dict[str, Any] | None:
    """The bounds a filter gives (None: it is an equality)."""
    if not isinstance(wanted, Mapping):
        return None
    if not wanted or any(op not in BOUNDS for op in wanted):
        raise InvalidFilter(
            f"attribute filter {name!r}: bounds are a dict of gt, gte, lt and lte, got "
            f"{shown(dict(wanted))}"
        )
    return dict(wanted)


def _equality(name: str, kind: str, wanted: Any) -> AttributeFilter:
    if kind == "keyword":
        if not isinstance(wanted, str):
            raise InvalidFilter(
                f"attribute filter {name!r}: {name!r} is a keyword, not {shown(wanted)}"
            )
        return AttributeFilter(name, text=wanted)
    number = _number(name, kind, wanted)
    return AttributeFilter(name, low=number, high=number)


def _range(name: str, kind: str, bounds: Mapping[str, Any]) -> AttributeFilter:
    if kind in ("keyword", "bool"):
        raise InvalidFilter(
            f"attribute filter {name!r}: {name!r} is a {kind}; only numbers and timestamps "
            "have ranges"
        )
    low = high = None
    for op, value in bounds.items():
        number = _number(name, kind, value)
        if op == "gt":
            number = math.nextafter(number, math.inf)
        elif op == "lt":
            number = math.nextafter(number, -math.inf)
        if op in ("gt", "gte"):
            low = number if low is None else max(low, number)
        else:
            high = number if high is None else min(high, number)
    return AttributeFilter(name, low=low, high=high)


def _number(name: str, kind: str, value: Any) -> float:
    """A filter value as the stored number of an attribute of ``kind``."""
    article = "an" if kind == "int" else "a"
    problem = f"attribute filter {name!r}: {shown(value)} is not {article} {kind}"
    if kind == "bool":
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return float(value.lower() == "true")
        raise InvalidFilter(f"{problem} (true or false)")
    if kind == "timestamp":
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=UTC)
            return float(aware.timestamp())
        if isinstance(value, str):
            try:
                return _finite(float(value), problem)
            except ValueError:
                return time_of(value, f"attribute filter {name!r}")
    if isinstance(value, bool):
        raise InvalidFilter(problem)
    if isinstance(value, int | float):
        return _finite(float(value), problem)
    if isinstance(value, str):
        try:
            return _finite(float(value), problem)
        except ValueError:
            raise InvalidFilter(problem) from None
    raise InvalidFilter(problem)


def _finite(number: float, problem: str) -> float:
    if not math.isfinite(number):
        raise InvalidFilter(f"{problem} (a finite number)")
    return number


def time_of(value: object, parameter: str) -> float:
    """A point in time given as Unix seconds, a datetime (UTC unless it says) or ISO-8601
    text; InvalidFilter naming ``parameter`` otherwise."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            return _finite(float(value), "")
        except (ValueError, InvalidFilter):
            pass
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    raise InvalidFilter(
        f"invalid {parameter} {shown(value)}: a time is ISO-8601 (UTC unless it names an "
        "offset) or Unix seconds"
    )
