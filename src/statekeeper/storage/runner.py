"""What the domain operations shared by both adapters run on.

Each adapter supplies four primitives (one writing statement, one reading
statement, every row of one statement, several statements atomically); the
domain mixins (queues, idempotency, workflows) bind their named queries and call
them, so an operation whose SQL differs by nothing but placeholders is written once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from statekeeper.storage.queries import Dialect, Query

Statement = tuple[str, tuple[Any, ...]]
# One statement of an atomic script: the statement, how to read its result
# (rowcount, found, first or row), and whether finding no row abandons the script.
Scripted = tuple[Statement, str, bool]


def shape(row: Any, mode: str) -> Any:
    """A fetched row as ``mode`` asks: found (bool), first (its first value) or row."""
    if mode == "found":
        return row is not None
    if mode == "first":
        return None if row is None else row[0]
    return None if row is None else tuple(row)


class StatementRunner:
    dialect: Dialect
    _queries: dict[str, Query]

    async def run_write(self, statement: Statement, what: str, mode: str) -> Any:
        raise NotImplementedError  # provided by the adapter

    async def run_read(self, statement: Statement, what: str, mode: str) -> Any:
        raise NotImplementedError  # provided by the adapter

    async def run_many(
        self, statement: Statement, what: str, *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # provided by the adapter

    async def run_atomic(self, script: Sequence[Scripted], what: str) -> list[Any] | None:
        """Every statement in one transaction; None (all rolled back) when a required
        statement found no row."""
        raise NotImplementedError  # provided by the adapter

    def _bind(self, query_name: str, /, **values: Any) -> Statement:
        query = self._queries[query_name]
        return query.sql, query.args(**values)

    def _list_arg(self, name: str, values: Sequence[str]) -> dict[str, Any]:
        """A list parameter: an array on PostgreSQL, JSON text (``<name>_json``) on SQLite."""
        if self.dialect == "postgres":
            return {name: list(values)}
        return {f"{name}_json": json.dumps(list(values))}
