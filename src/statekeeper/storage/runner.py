"""The statement primitives every adapter provides, on which each block's operations
are written once (``state_ops``, ``queue_ops``, ``idempotency_ops``, ``workflow_ops``,
``reseal_ops``, ``state_query_ops``).

An adapter runs one writing statement, one reading statement, every row of one
statement (a long read off the event loop: ``run_scan``), or several statements
atomically; the operations bind their named
queries and call these, so an operation whose SQL differs by nothing but
placeholders (or by a ``-- postgres:`` line) is written once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from statekeeper.errors import QueryTooSlow
from statekeeper.storage.queries import Dialect, Query

Statement = tuple[str, tuple[Any, ...]]
# One statement of an atomic script: the statement, how to read its result
# (rowcount, found, first or row; or many: the statement's arguments are a sequence of
# argument tuples, run as one batch), and whether finding no row abandons the script.
Scripted = tuple[Statement, str, bool]


def shape(row: Any, mode: str) -> Any:
    """A fetched row as ``mode`` asks: found (bool), first (its first value) or row."""
    if mode == "found":
        return row is not None
    if mode == "first":
        return None if row is None else row[0]
    return None if row is None else tuple(row)


class Database(Protocol):
    """What an adapter gives the operations above it."""

    dialect: Dialect
    queries: dict[str, Query]

    async def run_write(self, statement: Statement, what: str, mode: str) -> Any:
        """One writing statement; ``mode``: rowcount, found, first or row."""

    async def run_read(self, statement: Statement, what: str, mode: str) -> Any:
        """One reading statement; ``mode``: found, first or row."""

    async def read_row(self, statement: Statement, what: str) -> Any:
        """The first row of a point read as the driver gives it (or None): the hot
        path of state reads, with nothing in between."""

    async def run_many(
        self, statement: Statement, what: str, *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        """Every row of one statement (``write``: it changes rows)."""

    async def run_scan(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        """Every row of a read that may take long (a state query reading many keys),
        without holding the event loop meanwhile."""

    async def run_atomic(self, script: Sequence[Scripted], what: str) -> list[Any] | None:
        """Every statement in one transaction; None (all rolled back) when a required
        statement found no row."""


# How long a scan (``run_scan``: a state query) may read before it is stopped.
SCAN_TIMEOUT = 10.0


def scan_too_slow(seconds: float) -> QueryTooSlow:
    return QueryTooSlow(
        f"the query read for more than {seconds:g} seconds and was stopped: narrow its "
        "filter, or page without a sort"
    )


class Operations:
    """What the operations of one block share: the database and its named queries."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queries = db.queries

    def _bind(self, query_name: str, /, **values: Any) -> Statement:
        query = self._queries[query_name]
        return query.sql, query.args(**values)

    def _list_arg(self, name: str, values: Sequence[str]) -> dict[str, Any]:
        """A list parameter: an array on PostgreSQL, JSON text (``<name>_json``) on SQLite."""
        if self._db.dialect == "postgres":
            return {name: list(values)}
        return {f"{name}_json": json.dumps(list(values))}
