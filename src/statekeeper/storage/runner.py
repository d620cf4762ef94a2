"""The statement primitives every adapter provides, on which each block's operations
are written once (``state_ops``, ``queue_ops``, ``idempotency_ops``, ``workflow_ops``,
``reseal_ops``, ``state_query_ops``).

An adapter runs one writing statement, one reading statement, every row of one
statement (a long read off the event loop: ``run_scan``; a walk of an index in its
order: ``run_in_order``), or several statements
atomically; the operations bind their named
queries and call these, so an operation whose SQL differs by nothing but
placeholders (or by a ``-- postgres:`` line) is written once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from statekeeper.errors import QueryTooSlow
from statekeeper.storage.queries import Dialect, Query

Statement = tuple[str, tuple[Any, ...]]
# One statement of an atomic script: the statement, how to read its result
# (rowcount, found, first or row; or many: the statement's arguments are a sequence of
# argument tuples, run as one batch), and whether finding no row abandons the script.
Scripted = tuple[Statement, str, bool]


class Take(NamedTuple):
    """A runner that takes the run its run's end admits (leased to it as its lease would
    lease it): who it is, its lease's end, the workflows and versions it runs, and the
    version it stamps on a run of each workflow that has none."""

    owner: str
    lease_end: float
    names: list[str]
    versions: list[str] | None
    stamps: dict[str, str]


class Finishing(NamedTuple):
    """How a run's end gives its slot back and admits the next run of its queue, in the
    transaction that finishes it (``WorkflowOps.finish``): on SQLite, statements after
    the finish; on PostgreSQL, the query the finish statement ends with, over the row it
    ended (``finished``), written with :names (the finish's own parameters, or
    ``values``): the columns of the run its end took (``Take``), or NULLs."""

    after: list[Scripted]
    returning: str | None = None
    values: dict[str, Any] | None = None


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

    async def run_in_order(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        """Every row of a read that walks an index in its order from a cursor and stops at
        its LIMIT (``ORDER BY`` that index's columns): planned so that it reads that index
        in order whatever the statistics say, never a range read whole and then sorted
        (on PostgreSQL, with ``IN_ORDER``)."""

    async def run_atomic(self, script: Sequence[Scripted], what: str) -> list[Any] | None:
        """Every statement in one transaction; None (all rolled back) when a required
        statement found no row."""


# How a statement of ``run_in_order`` is planned on PostgreSQL (in its own transaction).
# Without statistics (or with stale ones) a namespace looks a few rows big, so reading
# its whole range after the cursor (a bitmap scan) and sorting it looks cheaper than
# walking the index to the LIMIT; then every batch of a walk reads the rest of the
# range. With sorting off the planner takes the one plan that needs no sort: the index
# walk (a bitmap or a table scan gives unordered rows). The statement keeps its index
# conditions, so the walk stops at the end of its range.
IN_ORDER = "SET LOCAL enable_sort = off"

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
