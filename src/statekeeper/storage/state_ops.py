"""State operations, written once for both adapters (queries in ``queries/state*.sql``).

Single reads and writes pass their arguments by position (checked at import against
the ``.sql`` files): they are the hot path of every app. Several writes at once, with
messages, are a unit of work (``unit.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from statekeeper.errors import AlreadyExists, ConflictError, TransactionConflict
from statekeeper.storage.queries import Query
from statekeeper.storage.rows import PutOp, StoredItem, WriteOp
from statekeeper.storage.runner import Database, Operations


def etag_mismatch(key: str, if_match: str | None) -> ConflictError:
    return ConflictError(
        f"key {key!r} does not match ETag {if_match!r}", key=key, if_match=if_match
    )


def key_exists(key: str) -> AlreadyExists:
    return AlreadyExists(f"key {key!r} already exists", key=key)


def transaction_conflict(index: int, op: WriteOp, cause: ConflictError) -> TransactionConflict:
    """The error of a transaction whose op ``index`` failed its condition with ``cause``."""
    return TransactionConflict(
        f"transaction not applied: operation {index} ({op.kind} {op.key!r}): {cause.message}",
        index=index,
        key=op.key,
        reason=cause.code,
    )


_PUT = ("namespace", "key", "value", "etag", "expires_at", "key_id")
_POSITIONAL = {
    "state_get": ("namespace", "key", "now"),
    "state_put": _PUT,
    "state_put_if_absent": (*_PUT, "now"),
    "state_put_if_match": (
        "value", "etag", "expires_at", "key_id", "namespace", "key", "if_match", "now",
    ),
    "state_delete": ("namespace", "key"),
    "state_delete_if_match": ("namespace", "key", "if_match", "now"),
}  # fmt: skip


def check_positional_orders(queries: dict[str, Query]) -> None:
    """The hot paths pass arguments by position: fail at import if a ``.sql`` edit
    changed an order they assume."""
    for name, params in _POSITIONAL.items():
        if queries[name].params != params:
            raise RuntimeError(f"query {name} takes {queries[name].params}, code assumes {params}")


def put_statement(
    queries: dict[str, Query], namespace: str, op: PutOp, now: float
) -> tuple[str, tuple[Any, ...], bool]:
    """The statement of one put, and whether it must return a row (its condition held)."""
    if op.if_match is not None:
        args = (op.value, op.etag, op.expires_at, op.key_id, namespace, op.key, op.if_match, now)
        return queries["state_put_if_match"].sql, args, True
    base = (namespace, op.key, op.value, op.etag, op.expires_at, op.key_id)
    if op.only_if_absent:
        return queries["state_put_if_absent"].sql, (*base, now), True
    return queries["state_put"].sql, base, False


def delete_statement(
    queries: dict[str, Query], namespace: str, key: str, if_match: str | None, now: float
) -> tuple[str, tuple[Any, ...]]:
    if if_match is not None:
        return queries["state_delete_if_match"].sql, (namespace, key, if_match, now)
    return queries["state_delete"].sql, (namespace, key)


def put_failed(op: PutOp) -> ConflictError:
    """Why a conditional put found no row."""
    return etag_mismatch(op.key, op.if_match) if op.if_match is not None else key_exists(op.key)


def delete_outcome(row: Any, key: str, if_match: str | None, now: float) -> bool:
    """A delete's answer from its returned row: whether a visible item went."""
    if if_match is not None:
        if row is None:
            raise etag_mismatch(key, if_match)
        return True
    return row is not None and (row[0] is None or row[0] > now)


class StateOps(Operations):
    """``contracts.StateStorage``: the block's operations over an adapter's statements."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        check_positional_orders(self._queries)
        self._get = self._queries["state_get"].sql

    async def get(self, namespace: str, key: str, now: float) -> StoredItem | None:
        """The visible item under ``key``, or None."""
        row = await self._db.read_row((self._get, (namespace, key, now)), f"cannot read {key!r}")
        if row is None:
            return None
        return StoredItem(key, row[0], row[1], row[2], row[3])

    async def get_many(
        self, namespace: str, keys: Sequence[str], now: float
    ) -> dict[str, StoredItem]:
        """The visible items among ``keys``; missing keys are simply absent."""
        statement = self._bind(
            "state_get_many", namespace=namespace, now=now, **self._list_arg("keys", keys)
        )
        rows = await self._db.run_many(statement, "cannot read keys")
        return {r[0]: StoredItem(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    async def list(
        self, namespace: str, *, after: str, low: str, high: str | None, limit: int, now: float
    ) -> list[StoredItem]:
        """Visible items with ``low <= key < high`` and ``key > after``, in key order."""
        statement = self._bind(
            "state_list", namespace=namespace, after=after, low=low,
            high_set=0 if high is None else 1, high=high or "", now=now, limit=limit,
        )  # fmt: skip
        rows = await self._db.run_many(statement, "cannot list keys")
        return [StoredItem(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def put(self, namespace: str, op: PutOp, now: float) -> None:
        """Apply one put; ConflictError or AlreadyExists when its condition fails."""
        sql, args, conditional = put_statement(self._queries, namespace, op, now)
        found = await self._db.run_write((sql, args), f"cannot write {op.key!r}", "found")
        if conditional and not found:
            raise put_failed(op)

    async def delete(self, namespace: str, key: str, if_match: str | None, now: float) -> bool:
        """Delete one key; True when a visible item was deleted (ConflictError when
        ``if_match`` is given and does not hold)."""
        statement = delete_statement(self._queries, namespace, key, if_match, now)
        row = await self._db.run_write(statement, f"cannot delete {key!r}", "row")
        return delete_outcome(row, key, if_match, now)

    async def reseal(
        self, namespace: str, key: str, etag: str, value: bytes, key_id: str | None
    ) -> bool:
        """Replace the stored bytes of an unchanged item (same ETag); False if it changed."""
        statement = self._bind(
            "state_reseal", namespace=namespace, key=key, etag=etag, value=value, key_id=key_id
        )
        return bool(await self._db.run_write(statement, f"cannot reseal {key!r}", "found"))

    async def purge_expired(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` expired rows of any namespace; how many."""
        statement = self._bind("state_purge_expired", now=now, limit=limit)
        return int(await self._db.run_write(statement, "cannot purge expired items", "rowcount"))
