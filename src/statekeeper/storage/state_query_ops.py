"""State queries in the database (``contracts.StateQueryStorage``): the one statement of a
state query, per dialect, from the named pieces in
``queries/state_query/<dialect>.sql``.

The statement's shape depends on the query (how many conditions, on which operators,
how many sort keys), so it is put together per query; every piece comes from the
``.sql`` files, and every value of the query (paths, compared values, the page's
position) is a bound parameter: no text of the caller ever becomes SQL. Placeholders are
numbered (``?3`` on SQLite, ``$3`` on PostgreSQL), so a parameter is bound once and
used wherever its piece repeats.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from statekeeper.errors import InvalidFilter
from statekeeper.storage.queries import Dialect
from statekeeper.storage.runner import Operations, Statement
from statekeeper.storage.state_query import (
    AnyOf,
    Compare,
    Filter,
    Position,
    QueryRow,
    Scalar,
    StateQuery,
    check_path,
    check_position,
    check_scalar,
    number_text,
)

_BLOCK = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_SLOT = re.compile(r"\{(\w+)\}")
_SYMBOL = {"GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}
_INTEGER = re.compile(r"-?[0-9]+")


@cache
def pieces(dialect: Dialect) -> dict[str, str]:
    """The named pieces of ``dialect`` (comment lines dropped; a leading space kept)."""
    folder = resources.files("statekeeper.storage.queries").joinpath("state_query")
    text = folder.joinpath(f"{dialect}.sql").read_text(encoding="utf-8")
    split = _BLOCK.split(text)
    found: dict[str, str] = {}
    for index in range(1, len(split), 2):
        lines = [line for line in split[index + 1].splitlines() if not line.startswith("--")]
        found[split[index]] = "\n".join(lines).strip("\n").rstrip()
    return found


def fill(piece: str, **slots: str) -> str:
    """``piece`` with its ``{slot}``s replaced (by placeholders and other pieces only)."""
    return _SLOT.sub(lambda match: slots[match.group(1)], piece)


class Params:
    """The bound values of one statement; each call binds one and names its placeholder."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"{self.mark}{len(self.values)}"


def _is_number(value: Scalar) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _SqliteSQL:
    """Conditions over SQLite's JSON1 functions: a path is one JSON path parameter."""

    def __init__(self, params: Params) -> None:
        self.p = pieces("sqlite")
        self.bind = params

    def _path(self, path: tuple[str, ...]) -> str:
        return self.bind("$" + "".join(f'."{segment}"' for segment in path))

    def equal(self, path: tuple[str, ...], value: Scalar) -> str:
        at = self._path(path)
        if value is None:
            return fill(self.p["is_null"], path=at)
        if isinstance(value, bool):
            return fill(self.p["is_true" if value else "is_false"], path=at)
        kind = "string_compare" if isinstance(value, str) else "number_compare"
        return fill(self.p[kind], path=at, op="=", value=self.bind(value))

    def any_of(self, path: tuple[str, ...], values: tuple[Scalar, ...]) -> str:
        at = self._path(path)
        parts = []
        strings = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if _is_number(v)]
        if strings:
            parts.append(fill(self.p["string_in"], path=at, values=self.bind(json.dumps(strings))))
        if numbers:
            parts.append(fill(self.p["number_in"], path=at, values=self.bind(json.dumps(numbers))))
        for constant, name in ((None, "is_null"), (True, "is_true"), (False, "is_false")):
            if any(v is constant for v in values):
                parts.append(fill(self.p[name], path=at))
        return "(" + " OR ".join(parts) + ")"

    def compare(self, symbol: str, path: tuple[str, ...], value: str | int | float) -> str:
        kind = "string_compare" if isinstance(value, str) else "number_compare"
        return fill(self.p[kind], path=self._path(path), op=symbol, value=self.bind(value))

    def present(self, path: tuple[str, ...]) -> str:
        return fill(self.p["present"], path=self._path(path))

    def sort_columns(self, path: tuple[str, ...]) -> tuple[str, str, str]:
        at = self._path(path)
        return tuple(fill(self.p[name], path=at) for name in _SORT_PIECES)  # type: ignore[return-value]

    def number(self, text: str) -> Any:
        # 20 characters hold any 64-bit integer; longer digit runs are not turned into
        # int (Python refuses more than 4300 digits), only into float.
        if len(text) <= 20 and _INTEGER.fullmatch(text) and -(2**63) <= int(text) < 2**63:
            return int(text)
        return float(text)


class _PostgresSQL:
    """Conditions over jsonb: a path is a chain of ``-> $n::text`` on the document."""

    def __init__(self, params: Params) -> None:
        self.p = pieces("postgres")
        self.bind = params

    def _path(self, path: tuple[str, ...]) -> str:
        return "doc" + "".join(fill(self.p["step"], name=self.bind(s)) for s in path)

    def equal(self, path: tuple[str, ...], value: Scalar) -> str:
        return fill(self.p["equal"], x=self._path(path), value=self.bind(json.dumps(value)))

    def any_of(self, path: tuple[str, ...], values: tuple[Scalar, ...]) -> str:
        documents = [json.dumps(v) for v in values]
        return fill(self.p["any_of"], x=self._path(path), values=self.bind(documents))

    def compare(self, symbol: str, path: tuple[str, ...], value: str | int | float) -> str:
        kind = "string_compare" if isinstance(value, str) else "number_compare"
        bound = value if isinstance(value, str) else self.number(repr(value))
        return fill(self.p[kind], x=self._path(path), op=symbol, value=self.bind(bound))

    def present(self, path: tuple[str, ...]) -> str:
        return fill(self.p["present"], x=self._path(path))

    def sort_columns(self, path: tuple[str, ...]) -> tuple[str, str, str]:
        at = self._path(path)
        return tuple(fill(self.p[name], x=at) for name in _SORT_PIECES)  # type: ignore[return-value]

    def number(self, text: str) -> Any:
        return Decimal(text)


_SORT_PIECES = ("sort_rank", "sort_number", "sort_text")
_Conditions = _SqliteSQL | _PostgresSQL


def compile_query(
    dialect: Dialect, namespace: str, low: str, high: str | None, query: StateQuery, now: float
) -> Statement:
    """The statement of one page of ``query`` (InvalidFilter on a query it cannot run)."""
    if isinstance(query.limit, bool) or not isinstance(query.limit, int) or query.limit < 1:
        raise InvalidFilter(f"a query's limit is a positive integer, got {query.limit!r}")
    if query.after is not None:
        check_position(query.after, query.sort)
    params = Params("?" if dialect == "sqlite" else "$")
    sql: _Conditions = _SqliteSQL(params) if dialect == "sqlite" else _PostgresSQL(params)
    p = sql.p
    columns: list[str] = []
    order: list[str] = []
    groups: list[tuple[tuple[str, ...], bool, tuple[str, ...]]] = []  # after the position
    after = query.after
    for index, key in enumerate(query.sort):
        expressions = sql.sort_columns(check_path(key.path))
        direction = " DESC" if key.descending else ""
        for letter, expression in zip("rnt", expressions, strict=True):
            columns.append(f",\n       {expression} AS {letter}{index}")
            order.append(f"{letter}{index}{direction}")
        if after is not None:
            rank, number, text = after.sort_values[index]
            bound = tuple(
                fill(p[f"{kind}_param"], param=params(value))
                for kind, value in zip(
                    ("rank", "number", "text"), (rank, sql.number(number), text), strict=True
                )
            )
            groups.append((expressions, key.descending, bound))
    order.append("key")
    conditions = [] if query.filter is None else [_condition(sql, query.filter, depth=0)]
    after_key = ""
    if after is not None and not query.sort:  # keyset on the key: an index range
        after_key = fill(p["after_key"], key=params(after.key))
    elif after is not None:
        groups.append((("key",), False, (fill(p["text_param"], param=params(after.key)),)))
        conditions.append(_after(groups))
    statement = fill(
        p["select"],
        columns="".join(columns),
        namespace=params(namespace),
        low=params(low),
        below="" if high is None else fill(p["below"], key=params(high)),
        after_key=after_key,
        now=params(now),
        filter=" AND ".join(conditions) or "1 = 1",
        order=", ".join(order),
        limit=params(query.limit),
    )
    return statement, tuple(params.values)


MAX_DEPTH = 32  # a guard of the recursion; callers bound the nesting much lower


def _condition(sql: _Conditions, node: Filter, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"a filter is nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, Compare):
        path = check_path(node.path)
        value = check_scalar(node.value)
        if node.op == "EQ":
            return sql.equal(path, value)
        if node.op not in _SYMBOL and node.op != "NEQ":
            raise InvalidFilter(f"unknown operator {str(node.op)[:40]!r}")
        if node.op == "NEQ":
            return f"({sql.present(path)} AND NOT ({sql.equal(path, value)}))"
        if value is None or isinstance(value, bool):
            raise InvalidFilter(f"{node.op} compares with a number or a string, not {value!r}")
        return sql.compare(_SYMBOL[node.op], path, value)
    if isinstance(node, AnyOf):
        if not node.values:
            raise InvalidFilter("IN needs at least one value")
        values = tuple(check_scalar(v) for v in node.values)
        return sql.any_of(check_path(node.path), values)
    if node.op not in ("AND", "OR"):
        raise InvalidFilter(f"unknown operator {str(node.op)[:40]!r}")
    if not node.parts:
        raise InvalidFilter(f"{node.op} needs at least one filter")
    joined = f" {node.op} ".join(_condition(sql, part, depth + 1) for part in node.parts)
    return f"({joined})"


def _after(groups: list[tuple[tuple[str, ...], bool, tuple[str, ...]]]) -> str:
    """Rows after a position in a sort of mixed directions: lexicographic over the sort
    keys (each one a row of its columns, compared as a row), expanded."""
    disjuncts = []
    for index, (columns, descending, values) in enumerate(groups):
        same = [f"({', '.join(c)}) = ({', '.join(v)})" for c, _, v in groups[:index]]
        same.append(f"({', '.join(columns)}) {'<' if descending else '>'} ({', '.join(values)})")
        disjuncts.append("(" + " AND ".join(same) + ")")
    return "(" + "\n    OR ".join(disjuncts) + ")"


class StateQueryOps(Operations):
    """``contracts.StateQueryStorage``: a state query as one statement."""

    async def query(
        self,
        namespace: str,
        *,
        low: str,
        high: str | None,
        query: StateQuery,
        now: float,
    ) -> list[QueryRow]:
        """The rows of one page of ``query`` among keys in ``[low, high)``, in order."""
        statement = compile_query(self._db.dialect, namespace, low, high, query, now)
        rows = await self._db.run_scan(statement, "cannot query state")
        width = len(query.sort)
        return [
            QueryRow(
                row[0], bytes(row[1]), row[2], row[3],
                Position(row[0], tuple(
                    (int(row[4 + 3 * i]), number_text(row[5 + 3 * i]), str(row[6 + 3 * i]))
                    for i in range(width)
                )),
            )
            for row in rows
        ]  # fmt: skip
