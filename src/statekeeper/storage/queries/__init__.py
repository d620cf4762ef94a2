"""Named SQL, loaded once from the ``.sql`` files beside this module.

Each file holds blocks that start with ``-- name: <query_name>``. Parameters are
written once as ``:name`` and compiled per dialect: ``?`` for SQLite and ``$n`` for
PostgreSQL. ``<domain>.sql`` (state, queues) serves both dialects;
``<domain>.<dialect>.sql`` overrides or adds only the statements that truly
differ; a clause that differs is a line ``-- postgres: FOR UPDATE SKIP LOCKED`` (or
``-- sqlite: ...``) in the common statement, kept in its dialect only. A domain of
one dialect alone (``maintenance.postgres.sql``) has no common file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]

_BLOCK = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
# ":name" but not the "::type" cast of PostgreSQL.
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Query:
    """One compiled statement: its SQL and the order of its named parameters."""

    name: str
    sql: str
    params: tuple[str, ...]

    def args(self, **values: Any) -> tuple[Any, ...]:
        """The positional arguments for the driver, from named values."""
        try:
            return tuple(values[p] for p in self.params)
        except KeyError as missing:
            raise TypeError(f"query {self.name} needs parameter {missing}") from None


# A line "-- postgres: <SQL>" (or "-- sqlite: ...") is that SQL in its dialect and
# nothing in the other: a statement that differs by a clause is still written once.
_DIALECT_LINE = re.compile(r"^(\s*)--\s*(sqlite|postgres):\s?(.*)$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)


def _compile(name: str, text: str, dialect: Dialect) -> Query:
    order: list[str] = []
    text = _DIALECT_LINE.sub(
        lambda m: f"{m.group(1)}{m.group(3)}" if m.group(2) == dialect else "", text
    )
    text = _COMMENT_LINE.sub("", text)  # a ":name" in a comment is no parameter

    def placeholder(match: re.Match[str]) -> str:
        param = match.group(1)
        if dialect == "sqlite":
            order.append(param)
            return "?"
        if param not in order:
            order.append(param)
        return f"${order.index(param) + 1}"

    sql = _PARAM.sub(placeholder, text).strip().rstrip(";")
    return Query(name, sql, tuple(order))


def _parse(text: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    pieces = _BLOCK.split(text)
    for index in range(1, len(pieces), 2):
        blocks[pieces[index]] = pieces[index + 1]
    return blocks


def load_text(text: str, dialect: Dialect) -> dict[str, Query]:
    """The named queries of ``text``, for a database of another kind than the app's
    (``events/sql_target.sql``: a projection's read database)."""
    return {name: _compile(name, body, dialect) for name, body in _parse(text).items()}


def load(dialect: Dialect) -> dict[str, Query]:
    """Every named query for ``dialect``; dialect files override common ones."""
    package = resources.files(__name__)
    files = sorted(entry.name for entry in package.iterdir() if entry.name.endswith(".sql"))
    common = [name for name in files if name.count(".") == 1]
    raw: dict[str, str] = {}
    for name in common:
        raw.update(_parse(package.joinpath(name).read_text(encoding="utf-8")))
        own = name.replace(".sql", f".{dialect}.sql")
        if own in files:
            raw.update(_parse(package.joinpath(own).read_text(encoding="utf-8")))
    for name in files:  # a domain of one dialect only (maintenance.postgres.sql)
        domain, _, rest = name.partition(".")
        if rest == f"{dialect}.sql" and f"{domain}.sql" not in files:
            raw.update(_parse(package.joinpath(name).read_text(encoding="utf-8")))
    return {name: _compile(name, text, dialect) for name, text in raw.items()}
