"""State queries: a filter on the JSON of values, a sort and a page, run by the database.

A query reads the visible items of one namespace whose keys lie in ``[low, high)`` (an
index range of the primary key), keeps those whose JSON value passes ``filter``, orders
them by ``sort`` then by key, and returns at most ``limit`` of them after ``after`` (the
``Position`` of the last row of the previous page: keyset paging, stable under writes).

The typing rules, the same on SQLite and PostgreSQL:

- a path names object members from the top of the value (``("a", "b")``: ``v["a"]["b"]``);
  a member name made of digits never indexes an array; a path that leads nowhere matches
  no comparison at all (not even NEQ);
- EQ / IN: equal JSON type and value (numbers by value: ``1`` equals ``1.0``); ``null``,
  ``true`` and ``false`` match themselves;
- NEQ: the path exists and EQ does not hold (a value of another type is not equal);
- GT / GTE / LT / LTE take a number or a string: a number compares with numbers only, a
  string with strings only (code point order), anything else never matches;
- sort: by type first, then by value: missing or null < numbers < strings < objects and
  arrays (equal to each other) < false < true; DESC reverses it all; ties by key.

Values sealed by a keyring, and values holding the JSON escape ``\\u0000`` (which
PostgreSQL's jsonb cannot hold), are never returned.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from statekeeper.errors import InvalidCursor, InvalidFilter

Scalar = str | int | float | bool | None
Operator = Literal["EQ", "NEQ", "GT", "GTE", "LT", "LTE"]
MAX_PATH_SEGMENTS = 32
MAX_SEGMENT_CHARS = 256
_INT64 = 2**63
# What a member name may not hold: SQLite's JSON path syntax has no escape for '"'.
_BAD_SEGMENT = re.compile(r'["\\\x00-\x1f\x7f]')
# A number as SQLite (repr of a float, an integer) or PostgreSQL (numeric) writes it;
# an exponent of at most three digits keeps it within what both backends read.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?")
MAX_NUMBER_CHARS = 5000


@dataclass(frozen=True, slots=True)
class Compare:
    """The value at ``path`` compared with ``value`` by ``op``."""

    op: Operator
    path: tuple[str, ...]
    value: Scalar


@dataclass(frozen=True, slots=True)
class AnyOf:
    """The value at ``path`` equals one of ``values`` (IN)."""

    path: tuple[str, ...]
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Combined:
    """Every part (AND) or at least one (OR)."""

    op: Literal["AND", "OR"]
    parts: tuple[Filter, ...]


Filter = Compare | AnyOf | Combined


@dataclass(frozen=True, slots=True)
class SortKey:
    path: tuple[str, ...]
    descending: bool = False


# Where a row stands in a sort: per sort key (type rank, number as text, string).
SortValue = tuple[int, str, str]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last row's key and sort values."""

    key: str
    sort_values: tuple[SortValue, ...] = ()


@dataclass(frozen=True, slots=True)
class StateQuery:
    filter: Filter | None = None
    sort: tuple[SortKey, ...] = ()
    limit: int = 100
    after: Position | None = None


@dataclass(frozen=True, slots=True)
class QueryRow:
    """One matching item: its full key, stored bytes, ETag, expiry, and position."""

    key: str
    value: bytes
    etag: str
    expires_at: float | None
    position: Position


def check_path(path: tuple[str, ...]) -> tuple[str, ...]:
    """A path the SQL can address; InvalidFilter otherwise."""
    if not path or len(path) > MAX_PATH_SEGMENTS:
        raise InvalidFilter(f"a path has 1 to {MAX_PATH_SEGMENTS} members, got {len(path)}")
    for segment in path:
        if not isinstance(segment, str) or not segment or len(segment) > MAX_SEGMENT_CHARS:
            raise InvalidFilter(
                f"a path member is 1 to {MAX_SEGMENT_CHARS} characters: {str(segment)[:40]!r}"
            )
        if _BAD_SEGMENT.search(segment) or not _is_text(segment):
            raise InvalidFilter(
                f"path member {segment[:40]!r} holds a quote, a backslash or a control character"
            )
    return path


def check_scalar(value: object) -> Scalar:
    """A value a filter can compare with: a string, a 64-bit integer, a finite number,
    a boolean or null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidFilter(f"the number {value} is beyond a 64-bit integer")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter("a number in a filter must be finite")
        return value
    if isinstance(value, str):
        if "\x00" in value or not _is_text(value):
            raise InvalidFilter("a string in a filter holds NUL or is not Unicode text")
        return value
    raise InvalidFilter(
        f"a filter compares with a string, a number, a boolean or null, not {type(value).__name__}"
    )


def check_position(position: Position, sort: tuple[SortKey, ...]) -> Position:
    """A position that could have come from this query (InvalidCursor otherwise)."""
    if not isinstance(position.key, str) or "\x00" in position.key or not _is_text(position.key):
        raise InvalidCursor("the page token names no key")
    if len(position.sort_values) != len(sort):
        raise InvalidCursor("the page token belongs to a query with another sort")
    for rank, number, text in position.sort_values:
        if type(rank) is not int or not 0 <= rank <= 4:
            raise InvalidCursor("the page token holds an invalid sort rank")
        if (
            not isinstance(number, str)
            or len(number) > MAX_NUMBER_CHARS
            or not _NUMBER.fullmatch(number)
        ):
            raise InvalidCursor("the page token holds an invalid number")
        if not isinstance(text, str) or "\x00" in text or not _is_text(text):
            raise InvalidCursor("the page token holds an invalid string")
    return position


def number_text(value: object) -> str:
    """A sort column's number (int or float on SQLite, Decimal on PostgreSQL) as the
    text a position keeps: exact, and read back as the same number."""
    return repr(value) if isinstance(value, float) else str(value)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
